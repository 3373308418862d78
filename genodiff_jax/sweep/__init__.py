"""Sampler sweeps (`genodiff sweep`): quality against sampling cost for a trained run.

- `grid`: the cells (sampler x steps x guidance x temperature), checked and sampled, compile time
  apart;
- `panel`: the fast quality measures (`PANEL`, one function each) against the real held-out
  people;
- `curves`: cells as curves over steps, and where each curve settles;
- `plots`: one PNG per measure, against steps and against seconds;
- `run`: `sweep_workdir`, which ties them together and writes the folder.
"""

from genodiff_jax.sweep.curves import convergence_table, curves, steps_within
from genodiff_jax.sweep.grid import (
    Cell,
    CompileClock,
    build_grid,
    parse_list,
    sample_cell,
)
from genodiff_jax.sweep.panel import (
    PANEL,
    Cohort,
    Measure,
    PanelSettings,
    RealPanel,
    frechet_distance,
    register_measure,
    score,
)
from genodiff_jax.sweep.plots import write_plots
from genodiff_jax.sweep.run import (
    SWEEP_KIND,
    SweepSettings,
    default_calling,
    split_calls,
    sweep_workdir,
    to_cohort,
)

__all__ = [
    "PANEL",
    "SWEEP_KIND",
    "Cell",
    "Cohort",
    "CompileClock",
    "Measure",
    "PanelSettings",
    "RealPanel",
    "SweepSettings",
    "build_grid",
    "convergence_table",
    "curves",
    "default_calling",
    "frechet_distance",
    "parse_list",
    "register_measure",
    "sample_cell",
    "score",
    "split_calls",
    "steps_within",
    "sweep_workdir",
    "to_cohort",
    "write_plots",
]
