"""`genodiff sweep --train`: a study of training settings, each judged by a sampler sweep.

A study file (`experiments/study_*.py`, `get_config(arg)` like a training config) names a base
training config, a grid of config overrides (dotted key -> values; the cells are their product,
e.g. schedule x prediction target), overrides shared by every cell (the budget) and the sweep to
run on each trained cell (`SweepSettings` fields). `run_study` trains one run per cell in
`OUT/cells/NAME/train` (a work dir: a study run again resumes its cells, and a cell whose config
changed is refused, as `genodiff train` refuses), sweeps it into `OUT/cells/NAME/sweep`, and writes
`study.json` (every cell's training time, final losses and sweep rows), `study.csv` (one row per
cell x sweep cell) and one PNG per measure comparing the cells (one panel per sampler, quality
against steps, one curve per cell).

    genodiff sweep --train --data runs/demo/data --study experiments/study_schedules.py \
        --out runs/study_schedules
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_collections

from genodiff_jax.atomic import atomic_file, check_output, read_marker, write_marker
from genodiff_jax.errors import InputError

STUDY_KIND = "study"  # the marker kind of a study folder
STUDY_JSON, STUDY_CSV = "study.json", "study.csv"


@dataclasses.dataclass(frozen=True)
class Study:
    """A study: `base` (a training config, experiments/NAME.py[:ARG]), `grid` (dotted key ->
    values), `overrides` (dotted key -> value, every cell) and `sweep` (SweepSettings fields)."""

    base: str
    grid: Mapping[str, tuple]
    overrides: Mapping[str, Any]
    sweep: Mapping[str, Any]

    def cells(self) -> list[tuple[str, dict]]:
        """(name, overrides) per cell, in grid order; the name joins the grid values."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            name = "_".join(re.sub(r"[^A-Za-z0-9.+-]", "-", str(v)) for v in values)
            out.append((name, {**self.overrides, **dict(zip(keys, values))}))
        return out


def load_study(spec: str) -> Study:
    """`path/NAME.py[:ARG]` -> the `Study` its `get_config(ARG)` describes: base, grid ((dotted key,
    values) pairs), overrides ((dotted key, value) pairs) and sweep (SweepSettings fields); a
    missing key or an empty grid is an InputError naming the file."""
    from genodiff_jax.train.config import _config_module, _resolve_config_path

    path_str, _, arg = spec.partition(":")
    path = _resolve_config_path(path_str)
    module = _config_module(path)
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except (ValueError, AttributeError) as e:
        raise InputError(path, f"get_config: {e}") from e
    if not isinstance(config, ml_collections.ConfigDict):
        raise InputError(path, f"get_config must return a ConfigDict, got {type(config).__name__}")
    missing = [k for k in ("base", "grid") if k not in config]
    if missing:
        raise InputError(path, f"a study needs {' and '.join(missing)}")
    tree = config.to_dict()
    try:  # dotted keys cannot be ConfigDict fields: grid and overrides are (key, value) pairs
        grid = {str(k): tuple(v) for k, v in tree["grid"]}
        overrides = {str(k): v for k, v in tree.get("overrides", ())}
    except (TypeError, ValueError) as e:
        raise InputError(path, f"grid and overrides must be (dotted key, value) pairs: {e}") from e
    if not grid or any(not v for v in grid.values()):
        raise InputError(path, "the study's grid needs at least one value per key")
    return Study(base=str(tree["base"]), grid=grid, overrides=overrides,
                 sweep=dict(tree.get("sweep", {})))


def _sweep_settings(fields: Mapping[str, Any]):
    from genodiff_jax.sweep.run import SweepSettings

    known = {f.name for f in dataclasses.fields(SweepSettings)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InputError(None, f"study sweep settings: unknown key {unknown[0]!r}; known: "
                               f"{', '.join(sorted(known))}")
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    return SweepSettings(**tuples)


def run_study(data_dir: str | os.PathLike, study: Study | str, out: str | os.PathLike, *,
              overwrite: bool = False, progress: bool = False,
              log: Callable[[str], None] | None = None) -> dict:
    """Train and sweep every cell of `study` (a `Study` or a study file spec) into `out`; return
    what study.json holds. `out` may be new, empty or an earlier study (whose trained cells
    resume); another folder only with `overwrite`, never the dataset."""
    from genodiff_jax.sweep.run import sweep_workdir, write_csv
    from genodiff_jax.train.config import apply_overrides, load_config
    from genodiff_jax.train.loop import run_training

    say = log or (lambda msg: None)
    study = load_study(study) if isinstance(study, str) else study
    settings = _sweep_settings(study.sweep)
    cells = study.cells()
    for _, overrides in cells:  # every cell's config is checked before any training
        apply_overrides(load_config(study.base), overrides)
    out = Path(out)
    if (read_marker(out) or {}).get("kind") != STUDY_KIND:
        check_output(out, STUDY_KIND, inputs=(data_dir,), overwrite=overwrite)
        if out.exists() and overwrite:  # a file, or a foreign folder the user gave up
            import shutil

            shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, STUDY_KIND, base=study.base)
    results = []
    for i, (name, overrides) in enumerate(cells):
        folder = out / "cells" / name
        t0 = time.perf_counter()
        trained = run_training(data_dir, folder / "train", study.base, overrides=overrides,
                               progress=progress)
        train_s = time.perf_counter() - t0
        say(f"cell {i + 1}/{len(cells)} {name}: trained in {train_s:.1f} s")
        swept = sweep_workdir(folder / "train", folder / "sweep", settings, data_dir=data_dir,
                              log=lambda msg, name=name: say(f"  {name}: {msg}"))
        results.append({"cell": name, "overrides": overrides, "train_s": round(train_s, 2),
                        "training": trained, "sweep": swept})
    result = {"base": study.base, "grid": {k: list(v) for k, v in study.grid.items()},
              "overrides": dict(study.overrides), "sweep_settings": dict(study.sweep),
              "data": str(data_dir), "measures": results[0]["sweep"]["measures"],
              "reference": results[0]["sweep"]["reference"], "cells": results}
    with atomic_file(out / STUDY_JSON) as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    rows = study_rows(result)
    with atomic_file(out / STUDY_CSV) as tmp:
        write_csv(tmp, rows)
    result["files"] = [STUDY_JSON, STUDY_CSV, *write_study_plots(out, result)]
    return result


def study_rows(result: dict) -> list[dict]:
    """One row per trained cell x sweep cell: the study cell, its grid values, then the sweep
    row (sampler, steps, guidance, timings, measures)."""
    keys = list(result["grid"])
    rows = []
    for cell in result["cells"]:
        grid_values = {k.split(".")[-1]: cell["overrides"][k] for k in keys}
        for row in cell["sweep"]["cells"]:
            rows.append({"cell": cell["cell"], **grid_values, "train_s": cell["train_s"],
                         **{k: v for k, v in row.items() if k != "options"}})
    return rows


def study_summary(result: dict) -> tuple[list[str], list[list]]:
    """(header, rows): per study cell and sampler, the training seconds and each measure at the
    sampler's largest step count; the real reference last."""
    measures = list(result["measures"])
    header = ["cell", "sampler", "steps", "train_s", *measures]
    rows = []
    for cell in result["cells"]:
        by_sampler: dict[str, dict] = {}
        for row in cell["sweep"]["cells"]:
            if row.get("error") is None and row["steps"] >= by_sampler.get(
                    row["sampler"], {"steps": -1})["steps"]:
                by_sampler[row["sampler"]] = row
        for sampler, row in by_sampler.items():
            rows.append([cell["cell"], sampler, row["steps"], cell["train_s"],
                         *(_cell(row.get(m)) for m in measures)])
    ref = result.get("reference")
    if ref:
        rows.append([ref["name"], "-", "-", "-", *(_cell(ref.get(m)) for m in measures)])
    return header, rows


def _cell(value):
    return "-" if value is None else round(value, 4) if isinstance(value, float) else value


def write_study_plots(out: Path, result: dict) -> list[str]:
    """study_<measure>.png: one panel per sampler, the measure against steps, one curve per
    study cell, the real reference as a dotted line; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = study_rows(result)
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    files = []
    for measure, about in result["measures"].items():
        fig, axes = plt.subplots(1, len(samplers), figsize=(3.2 * len(samplers), 3.0),
                                 sharey=True, squeeze=False)
        for ax, sampler in zip(axes[0], samplers):
            for cell in result["cells"]:
                pts = sorted((r["steps"], r.get(measure)) for r in rows
                             if r["cell"] == cell["cell"] and r["sampler"] == sampler
                             and r.get(measure) is not None)
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, label=cell["cell"])
            ref = (result.get("reference") or {}).get(measure)
            if ref is not None:
                ax.axhline(ref, color="grey", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_title(sampler, fontsize=9)
            ax.set_xlabel("steps")
        axes[0][0].set_ylabel(about["label"])
        axes[0][-1].legend(fontsize=6)
        fig.tight_layout()
        name = f"study_{measure}.png"
        with atomic_file(out / name) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        files.append(name)
    return files
