"""`genodiff sweep`: a trained work dir -> quality against sampling cost over a grid of sampler
settings (sampler x steps x guidance, and x temperature for samplers that take one).

Every cell samples the same people (labels and seed), is timed with compilation apart
(`grid.sample_cell`), decoded to genotype calls like `genodiff sample` (gene-PCA features through
the codec and the calling method; genotype tokens as they are) and scored by the panel
(`panel.PANEL`) against the real held-out people. The real training people are scored the same
way once (`reference`), so the values a cohort of real people gets sit beside the cells. The
output folder (marker kind "sweep") holds sweep.json (everything), sweep.csv (one row per cell),
convergence.csv (`curves.convergence_table`) and one PNG per measure (`plots`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_dir, check_output
from genodiff_jax.errors import InputError
from genodiff_jax.sampling import calling as calling_module
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sweep.curves import convergence_table
from genodiff_jax.sweep.grid import Cell, build_grid, sample_cell
from genodiff_jax.sweep.panel import PANEL, Cohort, PanelSettings, RealPanel, measure_names, score
from genodiff_jax.sweep.plots import write_plots

SWEEP_KIND = "sweep"  # the marker kind of a sweep folder
SWEEP_JSON, SWEEP_CSV, CONVERGENCE_CSV = "sweep.json", "sweep.csv", "convergence.csv"
REFERENCE = "real_train"  # real training people scored like a cell: what real people get
DEFAULT_MAX_N = 500  # people per cell when --n is not given: the held-out split, at most this
TIMING_KEYS = ("compile_s", "sample_s", "decode_s", "panel_s")


def default_calling() -> str:
    """The calling module's default method (`calling.DEFAULT_CALLING`), read at call time so a
    change there (or a test's monkeypatch) is followed."""
    return calling_module.DEFAULT_CALLING


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """What to sweep and how. None means the run's own setting (see `grid.build_grid`): samplers,
    every sampler of the run's process; steps, the family's `default_steps` that fit; guidance and
    temperatures, the run config's; n, the held-out split's size (at most `DEFAULT_MAX_N`);
    calling, the run's, else `default_calling()`; measures, every panel measure."""

    samplers: tuple[str, ...] | None = None
    steps: tuple[int, ...] | None = None
    guidance: tuple[float, ...] | None = None
    temperatures: tuple[float, ...] | None = None
    n: int | None = None
    labels: str = "test"  # the held-out split's class mix, or a `genodiff sample --labels` spec
    seed: int = 0
    calling: str | None = None
    tolerance: float = 0.01  # relative, for the convergence table
    measures: tuple[str, ...] | None = None
    reference: bool = True  # score the real training people too
    checkpoint: str = "best"
    ema: bool = True
    batch_size: int | None = None
    weights_dtype: str = "auto"  # of the weight matrices sampled with (models.weights_dtype)
    panel: PanelSettings = PanelSettings()


# -- inputs ----------------------------------------------------------------------------------------

def split_calls(data, split: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A split's genotype calls int8 [n, S] (only `rows` of it when given): from the dataset's
    genotype tokens, or, for a dataset prepared before they were stored, from its genotype file."""
    if data.token_kind is not None:
        tokens = data.tokens(split)
        tokens = np.asarray(tokens if rows is None else tokens[np.sort(rows)])
        return tokens.sum(axis=1, dtype=np.int8) if tokens.ndim == 3 else tokens.astype(np.int8)
    from genodiff_jax.eval.report import real_calls

    index = getattr(data, split).index
    return real_calls(data)[index if rows is None else index[np.sort(rows)]]


def sweep_labels(spec: str, n: int, data, seed: int) -> np.ndarray:
    """Labels of every cell's cohort: "test" gives the held-out split's class mix (so each cell
    is compared with people like it), anything else is read as `genodiff sample --labels`."""
    from genodiff_jax.sampling.labels import draw_labels, labels_from_spec

    if spec == "test":
        return draw_labels("train", n, class_names=data.class_names, seed=seed,
                           train_labels=data.test.labels)
    return labels_from_spec(spec, n, class_names=data.class_names, seed=seed,
                            train_labels=data.train.labels)


def to_cohort(samples: np.ndarray, labels_N: np.ndarray, data, family, calling: str) -> Cohort:
    """A cell's samples as the panel sees them: calls, labels and gene-PCA features (the sampled
    ones where the family samples features; else the codec's encoding of the calls)."""
    genotypes = family.genotypes(samples, data, calling)
    calls = genotypes.calls
    features = genotypes.features
    return Cohort(calls, labels_N, data.codec.encode(calls) if features is None else features)


# -- the sweep -------------------------------------------------------------------------------------

def _check_settings(s: SweepSettings) -> tuple[str, ...]:
    if s.n is not None and s.n < 2:
        raise InputError(None, f"--n must be >= 2 (the panel compares cohorts), got {s.n}")
    if not (math.isfinite(s.tolerance) and s.tolerance >= 0):
        raise InputError(None, f"--tolerance must be a finite number >= 0, got {s.tolerance}")
    if s.batch_size is not None and s.batch_size < 1:
        raise InputError(None, f"--batch-size must be >= 1, got {s.batch_size}")
    if s.checkpoint not in ("best", "latest"):
        raise InputError(None, f"--checkpoint must be best or latest, got {s.checkpoint!r}")
    try:
        return measure_names(s.measures)
    except ValueError as e:
        raise InputError(None, f"--measures: {e}") from None


def sweep_workdir(workdir: str | os.PathLike, out: str | os.PathLike,
                  settings: SweepSettings = SweepSettings(), *,
                  data_dir: str | os.PathLike | None = None, overwrite: bool = False,
                  log: Callable[[str], None] | None = None) -> dict:
    """Sample and score every cell of the grid `settings` describes for the run in `workdir`,
    write the sweep into `out` (checked first, written atomically: a new path, an empty folder
    or an earlier sweep; with `overwrite` any other folder; never the work dir or the dataset)
    and return what sweep.json holds. A cell whose sampler produces NaN or inf is kept with its
    `error` and no numbers; the others go on. `log` gets one line per cell."""
    from genodiff_jax.data.loader import load_prepared
    from genodiff_jax.families import family_of
    from genodiff_jax.models import weights_dtype
    from genodiff_jax.sampling.calling import CALLERS
    from genodiff_jax.sampling.cohort import NonFiniteSampleError
    from genodiff_jax.sharding import is_main_process, make_mesh
    from genodiff_jax.train.config import sampling_defaults
    from genodiff_jax.train.trained import load_trained, read_run

    t_start = time.perf_counter()
    say = log or (lambda msg: None)
    measures = _check_settings(settings)
    config, run = read_run(workdir)
    data_dir = data_dir or run["data_dir"]
    inputs = (workdir, data_dir)
    check_output(out, SWEEP_KIND, inputs=inputs, overwrite=overwrite)
    defaults = sampling_defaults(config)
    calling = settings.calling or defaults.get("calling") or default_calling()
    if calling not in CALLERS:
        raise InputError(None, f"--calling: unknown calling method {calling!r}; known: "
                               f"{', '.join(sorted(CALLERS))}")
    data = load_prepared(data_dir)
    trained = load_trained(workdir, which=settings.checkpoint, ema=settings.ema)
    weights = weights_dtype(settings.weights_dtype)
    trained = trained.with_weights(weights)
    recorded = trained.run.get("dataset_fingerprint")
    if recorded and data.fingerprint and recorded != data.fingerprint:
        raise InputError(data_dir, f"is not the dataset this run was trained on (fingerprint "
                         f"{data.fingerprint}, the run's {recorded})")
    process = trained.process
    family = family_of(process)
    if settings.calling is not None and not family.takes_calling:
        raise InputError(None, f"--calling: this run samples {process.representation}, "
                               "written as the genotypes they are; --calling is for gene-PCA "
                               "runs (features)")
    cells = build_grid(process, defaults, samplers=settings.samplers, steps=settings.steps,
                       guidance=settings.guidance, temperatures=settings.temperatures,
                       train_x=data.train.features)
    if len(data.test) < 2:
        raise InputError(data_dir, f"the held-out split has {len(data.test)} people; the panel "
                                   "needs at least 2")
    n = settings.n or min(len(data.test), DEFAULT_MAX_N)
    labels_N = sweep_labels(settings.labels, n, data, settings.seed)
    n = len(labels_N)

    test_calls = split_calls(data, "test")
    real = RealPanel(Cohort(test_calls, data.test.labels, data.test.features), data.mask,
                     data.variants.chrom, settings.panel)
    reference = None
    if settings.reference:
        rng = np.random.default_rng(settings.seed)
        rows = np.sort(rng.choice(len(data.train), min(n, len(data.train)), replace=False))
        t0 = time.perf_counter()
        reference = {"name": REFERENCE, "n": int(len(rows)),
                     **score(Cohort(split_calls(data, "train", rows), data.train.labels[rows],
                                    data.train.features[rows]), real, measures)}
        reference["panel_s"] = round(time.perf_counter() - t0, 4)
        say(f"{REFERENCE}: " + _headline(reference, measures))

    sampling = SamplingSettings(seed=settings.seed, batch_size=settings.batch_size,
                                mesh=make_mesh())
    plan = family.sampling_plan(trained, data)
    rows_out = []
    for i, cell in enumerate(cells):
        row = _cell_fields(cell)
        try:
            samples, timing = sample_cell(trained, data, cell, labels_N, sampling, plan)
        except NonFiniteSampleError as e:
            row.update({k: None for k in TIMING_KEYS}, error=str(e))
            rows_out.append(row)
            say(f"cell {i + 1}/{len(cells)} {_cell_name(cell)}: {e}")
            continue
        t0 = time.perf_counter()
        cohort = to_cohort(samples, labels_N, data, family, calling)
        timing["decode_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        numbers = score(cohort, real, measures)
        timing["panel_s"] = time.perf_counter() - t0
        row.update({k: round(v, 4) for k, v in timing.items()}, **numbers, error=None)
        rows_out.append(row)
        say(f"cell {i + 1}/{len(cells)} {_cell_name(cell)}: compile {timing['compile_s']:.2f} s, "
            f"sample {timing['sample_s']:.2f} s; " + _headline(row, measures))

    table = convergence_table(rows_out, measures, settings.tolerance)
    ok = [r for r in rows_out if r["error"] is None]
    result = {
        "workdir": str(workdir), "data": str(data_dir), "dataset_fingerprint": data.fingerprint,
        "model": str(config.model.name), "process": str(config.diffusion.get("process",
                                                                            "gaussian")),
        "family": process.representation, "train_step": int(trained.step), "n": n,
        "n_test": len(data.test),
        "n_variants": int(test_calls.shape[1]),
        "settings": {
            **dataclasses.asdict(settings),
            "samplers": list(dict.fromkeys(c.sampler for c in cells)),
            "steps": sorted({c.steps for c in cells}),
            "guidance": sorted({c.guidance for c in cells}),
            "temperatures": sorted({c.temperature for c in cells if c.temperature is not None}),
            "n": n, "calling": calling if family.takes_calling else None,
            "weights_dtype": weights,
            "measures": list(measures)},
        "measures": {name: {"label": PANEL[name].label, "ideal": PANEL[name].ideal,
                            "lo": PANEL[name].lo, "hi": PANEL[name].hi} for name in measures},
        "reference": reference,
        "cells": rows_out,
        "convergence": {"tolerance": settings.tolerance, "rule": "fewest steps from which the "
                        "measure stays within tolerance x |value at the largest steps| of that "
                        "value", "rows": table},
        "seconds": {k: round(sum(r[f"{k}_s"] for r in ok), 4)
                    for k in ("compile", "sample", "decode", "panel")},
        "machine": _machine(),
    }
    if not is_main_process():
        return result
    with atomic_dir(out, SWEEP_KIND, inputs=inputs, overwrite=overwrite,
                    dataset=data.fingerprint, workdir=str(Path(workdir).resolve())) as tmp:
        tmp = Path(tmp)
        plots = write_plots(tmp, rows_out, measures, reference)
        write_csv(tmp / SWEEP_CSV, rows_out)
        write_csv(tmp / CONVERGENCE_CSV, table)
        result["files"] = [SWEEP_JSON, SWEEP_CSV, CONVERGENCE_CSV, *plots]
        result["seconds"]["total"] = round(time.perf_counter() - t_start, 4)
        (tmp / SWEEP_JSON).write_text(json.dumps(result, indent=2, default=_plain) + "\n")
    return json.loads(json.dumps(result, default=_plain))


# -- helpers ---------------------------------------------------------------------------------------

def _cell_fields(cell: Cell) -> dict:
    return {"sampler": cell.sampler, "steps": cell.steps, "guidance": cell.guidance,
            "temperature": cell.temperature, "options": dict(cell.options)}


def _cell_name(cell: Cell) -> str:
    t = "" if cell.temperature is None else f" T={cell.temperature:g}"
    return f"{cell.sampler} {cell.steps} steps w={cell.guidance:g}{t}"


def _headline(row: dict, measures: Sequence[str]) -> str:
    return ", ".join(f"{m} {row[m]:.3f}" if row.get(m) is not None else f"{m} -"
                     for m in measures)


def _machine() -> dict:
    from genodiff_jax.machine import machine_info

    return machine_info()


def _plain(obj):
    """JSON for what the standard encoder does not take: numpy scalars and arrays."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """One row per dict, columns in order of first appearance, `options` (as JSON) and `error`
    last; None as an empty field."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    tail = [k for k in ("options", "error") if k in columns]
    columns = [k for k in columns if k not in tail] + tail
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v, default=_plain) if isinstance(v, dict) else
                             ("" if v is None else v) for k, v in row.items()})
