"""A whole benchmark: check every model's flags, then measure each section; the JSON result.

With `--reference torch` each model's entry gets a `reference` block (the implementation, its
version and threads, both parameter counts) and its train and forward sections the twin's timings,
taken in turns with ours, under `reference`, with `ratio` = reference seconds / ours. With
`--project` it gets a `projection` block (bench/projection.py): roofline times on the named GPUs,
from programs compiled here; with no `--what` that is all a run does."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import jax
from jax.sharding import Mesh

from genodiff_jax.atomic import atomic_file
from genodiff_jax.bench.batch_search import largest_train_batch
from genodiff_jax.bench.examples import build_example, check_shape_flags, param_count
from genodiff_jax.bench.machine import machine_info, peak_tflops
from genodiff_jax.bench.models import (
    BenchModel,
    build_denoiser,
    diffusion_fields,
    is_paper_size,
    model_fields,
)
from genodiff_jax.bench.projection import devices_named, project
from genodiff_jax.bench.reference import REFERENCES
from genodiff_jax.bench.settings import BenchSettings, check_settings, parse_batch
from genodiff_jax.bench.timers import bench_forward, bench_sample, bench_train, random_params
from genodiff_jax.errors import InputError
from genodiff_jax.models import inference_weights, weights_dtype
from genodiff_jax.sharding import make_mesh


def _prepare(specs: Sequence[BenchModel], s: BenchSettings, mesh: Mesh) -> list[tuple]:
    """(spec in the compute dtype, model, its Example, batch or "max", parameter count, the
    reference's side or None) for every model; InputError for the first bad flag or size, before
    anything is measured."""
    check_shape_flags(specs, s)
    prepared = []
    for spec in specs:
        spec = spec.with_dtype(s.dtype) if s.dtype else spec
        batch = spec.batch if s.batch is None else parse_batch(s.batch)
        check_settings(s, spec, batch, mesh)
        reference = REFERENCES[s.reference]  # the class of the other side, or None
        if reference is not None:
            reference.check(spec, backend=jax.default_backend(), dtype=spec.dtype)
        model = build_denoiser(spec, s.classes)
        example = build_example(spec, model, s)
        try:
            num_params = param_count(model, example)
        except (ValueError, TypeError, ZeroDivisionError) as e:
            raise InputError(None, f"{spec.name} at {example.label}: {e}") from e
        side = None if reference is None else reference(
            spec, model, example, classes=s.classes, seed=s.seed, params=num_params)
        prepared.append((spec, model, example, batch, num_params, side))
    return prepared


def _side_by_side(section: dict, unit: str, name: str, what: str, say) -> None:
    """`ratio` = the reference's median seconds over ours, in the section and the log."""
    ours, theirs = section[f"seconds_per_{unit}"], section["reference"][f"seconds_per_{unit}"]
    section["ratio"] = theirs / ours
    say(f"{what}: ours {ours:.4g} s, {name} {theirs:.4g} s a {unit} ({name} / ours "
        f"{section['ratio']:.2f})")


def run_bench(
    specs: Sequence[BenchModel],
    settings: BenchSettings,
    *,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Measure every model in `specs` under `settings`; return the JSON-ready result."""
    s = settings
    say = log or (lambda _msg: None)
    try:
        mesh = make_mesh(s.num_devices)
    except ValueError as e:
        raise InputError(None, str(e)) from e
    machine = machine_info()
    results = []
    for spec, model, example, batch, num_params, ref in _prepare(specs, s, mesh):
        search = None
        if batch == "max":
            say(f"{spec.name}: the largest train batch that fits")
            batch, search = largest_train_batch(spec, example, classes=s.classes,
                                                memory_limit_gb=s.memory_limit_gb, mesh=mesh)
        peak = (peak_tflops(machine["device_kind"], spec.dtype) if s.peak_tflops is None
                else s.peak_tflops)
        paper = is_paper_size(model)
        entry = {"model": spec.name, "source": spec.source, "paper_size": paper,
                 "params": num_params, "dtype": spec.dtype, **example.fields,
                 "classes": s.classes, "batch": batch, "num_devices": mesh.size,
                 "diffusion": diffusion_fields(spec.process), "model_fields": model_fields(model)}
        if search is not None:
            entry["batch_search"] = search
        if ref is not None:
            entry["reference"] = ref.as_json()
        beside = f" beside {ref.name}" if ref is not None else ""
        if "train" in s.what:
            say(f"{spec.name}: train step, batch {batch}, {example.label}, {spec.dtype}{beside}")
            twin = ref.train_step(batch) if ref is not None else None
            train = entry["train"] = bench_train(spec, example, s, batch, mesh, peak, twin)
            if twin is not None:
                train["reference"]["last_loss"] = twin.last_loss
                _side_by_side(train, "step", ref.name, f"{spec.name} train", say)
            del twin
        if "forward" in s.what or "sample" in s.what:
            entry["weights_dtype"] = weights = weights_dtype(s.weights_dtype)
            params = inference_weights(model, random_params(model, example.row, mesh, s.seed),
                                       example.row, weights)
            if "forward" in s.what:
                say(f"{spec.name}: forward, batch {batch}, {spec.dtype}{beside}")
                twin = ref.forward(batch) if ref is not None else None
                forward = entry["forward"] = bench_forward(model, params, example, s, batch,
                                                           mesh, peak, twin)
                if twin is not None:
                    _side_by_side(forward, "call", ref.name, f"{spec.name} forward", say)
                del twin
            if "sample" in s.what:
                say(f"{spec.name}: sampling {s.n} x {s.steps} steps with "
                    f"{', '.join(s.samplers)}")
                entry["sample"] = bench_sample(spec, model, params, example, s, mesh)
            del params
        if s.project:
            entry["projection"] = project(spec, example, s, devices_named(s.project), log=say)
        results.append(entry)
    return {"command": command, "machine": machine, "settings": s.as_json(), "results": results}


def write_json(result: dict, path: str | os.PathLike) -> None:
    """The result as indented JSON, written under a temporary name and renamed when complete."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
