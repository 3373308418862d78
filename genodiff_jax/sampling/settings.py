"""How a cohort is sampled and where it is written, each one settings object checked once.

`SamplingSettings` holds what `genodiff sample`, `sweep` and `impute` ask for (sampler, steps,
guidance, the sampler's options, seed, batch, mesh, weights dtype, and for a model that reads a
reference panel the VCF it copies from and how many rows); a field left None means the
run's own (its config's `sampling` section). `resolve_sampling` fills those in and validates the
lot, so the generators below it take the object as it comes. `OutputSettings` is the output path,
whether an existing one may be replaced, the extra formats and the inputs it must never be.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

from genodiff_jax.diffusion.process import sampler_option_names
from genodiff_jax.errors import InputError
from genodiff_jax.train.schema import GUIDANCE_RANGE

# Above GUIDANCE_WARN a run is told so: measured on the demo's gene-PCA model (300 people, dpmpp
# 50 steps; real training split 0.0464 homozygous-ALT calls), w = 0, 3, 10 give 0.88, 0.93, 1.02 x
# that share, w = 30 1.40 x, w = 100 2.20 x. The range itself is the config schema's.
GUIDANCE_WARN = 10.0


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    """A sampling request; once `resolve_sampling` has run, a checked one (sampler and options
    the process's own, steps it accepts, a guidance weight in range)."""

    sampler: str | None = None
    steps: int | None = None  # None: the run's (0 in the config: every step of the process)
    guidance: float | None = None
    options: Mapping[str, Any] | None = None  # the sampler's own keywords
    seed: int = 0
    batch_size: int | None = None  # None: from the free device memory
    mesh: Any = None  # a jax Mesh; None: every device
    weights_dtype: str | None = None  # "auto", "float32" or "bfloat16"; None: auto
    reference: Path | None = None  # a phased VCF a panel-reading model copies from (None: the
    # run's training split; `sampling.impute.check_panel_request`)
    panel_size: int | None = None  # the rows a panel-reading model reads (None: the run's R)

    def __post_init__(self) -> None:
        for flag, value in (("--batch-size", self.batch_size), ("--panel-size", self.panel_size)):
            if value is not None and value < 1:
                raise InputError(None, f"{flag} must be >= 1, got {value}")

    @property
    def key(self) -> jax.Array:
        return jax.random.key(self.seed)


@dataclasses.dataclass(frozen=True)
class OutputSettings:
    """Where an output goes: `path` may be new, empty or an earlier output of its kind (any
    folder or file with `overwrite`), never one of `inputs` (`atomic.check_output`); `plink` and
    `pgen` add those formats to a cohort."""

    path: Path
    overwrite: bool = False
    plink: bool = False
    pgen: bool = False
    inputs: tuple = ()


def resolve_sampling(process, defaults: Mapping, asked: SamplingSettings = SamplingSettings(),
                     train_x=None) -> SamplingSettings:
    """`asked` with the run's `defaults` (`train.config.sampling_defaults`) where it says None,
    checked. The config's options follow the sampler where it takes them (a sampler picked on the
    command line keeps, e.g., the config's clip_x0 but not another sampler's eta); every option
    asked for must be the sampler's own. `train_x` is what data-dependent options read."""
    name = asked.sampler or defaults["sampler"]
    if name not in process.samplers:
        raise InputError(None, f"unknown sampler {name!r}; known: "
                         f"{', '.join(sorted(process.samplers))}")
    takes = set(sampler_option_names(process.samplers[name]))
    merged = {k: v for k, v in defaults["options"].items() if k in takes}
    merged.update(asked.options or {})
    steps = asked.steps if asked.steps is not None else (defaults["steps"] or None)
    guidance = float(defaults["guidance"] if asked.guidance is None else asked.guidance)
    check_guidance(guidance)
    bad = [k for k, v in merged.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise InputError(None, f"--sampler-options: {bad[0]} must be finite, got {merged[bad[0]]}")
    try:
        process.check_steps(steps)
    except ValueError as e:
        raise InputError(None, f"--steps: {e}") from e
    try:
        merged = process.sampler_options(name, merged, train_x)
    except ValueError as e:
        raise InputError(None, f"--sampler-options: {e}") from e
    return dataclasses.replace(asked, sampler=name, steps=steps, guidance=guidance,
                               options=merged)


def check_guidance(guidance: float) -> None:
    """An InputError outside `GUIDANCE_RANGE`; a warning on stderr above `GUIDANCE_WARN`."""
    if not math.isfinite(guidance):
        raise InputError(None, f"--guidance must be a finite number, got {guidance}")
    least, most = GUIDANCE_RANGE
    if not least <= guidance <= most:
        raise InputError(None, f"--guidance must be in [{least:g}, {most:g}] (-1: unconditional, "
                               f"0: conditional, above: guided), got {guidance:g}")
    if guidance > GUIDANCE_WARN:
        print(f"genodiff: warning: guidance {guidance:g} is above {GUIDANCE_WARN:g}, where "
              "genotype counts drift (demo gene-PCA model: 1.40 x the real homozygous-ALT share "
              "at 30, 2.20 x at 100)", file=sys.stderr)
