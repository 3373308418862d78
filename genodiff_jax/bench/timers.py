"""The three timed sections: the train step, one denoiser call, and whole sampled cohorts.

Train and forward: lowered and compiled apart, the first call apart, `warmup` calls excluded, then
`repeats` calls, each blocked with `block_until_ready`, under a transfer guard (everything lives
on the devices already). With a reference (`--reference`, bench/reference.py) its call takes turns
with ours: first calls, warm-up and timed calls alternate, one of each per round. Sample:
`sampling.cohort.generate` end to end, compile + first run apart. What an example is (its spec,
random data, sampling start, extra units) comes from its `Example`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh

from genodiff_jax.bench.batch_search import resident_rows
from genodiff_jax.bench.examples import Example
from genodiff_jax.bench.machine import (
    compiled_memory_bytes,
    flops_per_device,
    peak_device_memory_bytes,
    throughput,
)
from genodiff_jax.bench.models import BenchModel, jit_forward, train_program
from genodiff_jax.bench.settings import BenchSettings
from genodiff_jax.data.loader import put_data
from genodiff_jax.models import inference_compiler_options
from genodiff_jax.sampling.cohort import Denoiser, auto_batch_size, generate
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sharding import batch_sharding, put_global, put_replicated
from genodiff_jax.train.config import sampling_defaults
from genodiff_jax.train.state import abstract_params


def random_params(model: nn.Module, row, mesh: Mesh, seed: int):
    """Random parameters (N(0, 0.02^2), drawn on the host from the abstract shapes), replicated;
    `row`: one example's spec (a bare (G, K): float32 features).

    Speed does not depend on the values, and this skips compiling `model.init`, which on CPU can
    take longer than compiling the model itself.
    """
    rng = np.random.default_rng(seed)
    shapes = abstract_params(model, row)
    host = jax.tree.map(lambda a: (0.02 * rng.standard_normal(a.shape, np.float32)).astype(a.dtype),
                        shapes)
    return put_replicated(host, mesh)


def _blocking(call: Callable[[], Any]) -> Callable[[], None]:
    """Our call, blocked until its result is ready, under a transfer guard: everything already
    lives on the devices, so a hidden host transfer would be an error."""
    def run() -> None:
        with jax.transfer_guard("disallow"):
            out = call()
        jax.block_until_ready(out)
    return run


def _timed_calls(calls: Sequence[Callable[[], Any]],
                 s: BenchSettings) -> list[tuple[float, list[float]]]:
    """For each call, (first call's seconds, the timed calls' seconds) after `s.warmup` untimed
    calls. Several calls take turns, one of each per round, so that all see the machine alike
    (its clock, the other jobs on it) rather than one after the other."""
    times = [[] for _ in calls]
    for _ in range(1 + s.warmup + s.repeats):
        for call, seconds in zip(calls, times):
            t0 = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - t0)
    return [(seconds[0], seconds[1 + s.warmup:]) for seconds in times]


def _beside(first_call_s: float, times: list[float], unit: str) -> dict:
    """A reference's timings, in the keys of ours."""
    return {"first_call_s": first_call_s, f"seconds_per_{unit}": statistics.median(times),
            "seconds_min": min(times), "seconds_max": max(times), "times_s": times}


def _lower_and_compile(fn, *args) -> tuple[dict, object]:
    """({"lower_s", "compile_s"}, the compiled call)."""
    t0 = time.perf_counter()
    lowered = fn.lower(*args)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    return {"lower_s": lower_s, "compile_s": time.perf_counter() - t0}, compiled


def _timings(compiled, first_call_s: float, times: list[float], unit: str, batch: int,
             mesh: Mesh, peak: float | None, example: Example) -> dict:
    median = statistics.median(times)
    return {"first_call_s": first_call_s, f"seconds_per_{unit}": median,
            "seconds_min": min(times), "seconds_max": max(times), "times_s": times,
            "examples_per_s": batch / median, **example.rates(batch / median),
            **throughput(flops_per_device(compiled), median, mesh.size, peak, unit),
            "compiled_memory_bytes_per_device": compiled_memory_bytes(compiled),
            "peak_device_memory_bytes": peak_device_memory_bytes()}


def bench_train(spec: BenchModel, example: Example, s: BenchSettings, batch: int, mesh: Mesh,
                peak: float | None, beside: Callable[[], Any] | None = None) -> dict:
    """The real train step of `spec`'s program on random resident data, at `batch`; `beside`: a
    reference's train step, timed in turns with ours (its timings under "reference")."""
    program = train_program(spec, row=example.row, mask=example.mask, classes=s.classes,
                            batch=batch, mesh=mesh)
    rng = np.random.default_rng(s.seed)
    rows = resident_rows(batch)
    data = put_data(example.data(rng, rows), rng.integers(0, s.classes, rows).astype(np.int32),
                    mesh)
    key = put_replicated(jax.random.key(s.seed + 1), mesh)
    last = {"state": program.init_state(jax.random.key(s.seed))}  # donated to each step
    compile_times, compiled = _lower_and_compile(program.step, last["state"], data, key)

    def step():
        last["state"], last["metrics"] = compiled(last["state"], data, key)
        return last["state"], last["metrics"]

    (first_call_s, times), *other = _timed_calls(
        [_blocking(step), *([beside] if beside else [])], s)
    loss = float(jax.device_get(last["metrics"]["loss"]))
    out = {**compile_times,
           **_timings(compiled, first_call_s, times, "step", batch, mesh, peak, example),
           "last_loss": loss, "loss_finite": bool(np.isfinite(loss))}
    if other:
        out["reference"] = _beside(*other[0], "step")
    return out


def bench_forward(model: nn.Module, params, example: Example, s: BenchSettings, batch: int,
                  mesh: Mesh, peak: float | None, beside: Callable[[], Any] | None = None) -> dict:
    """One denoiser call at `batch` (train=False, the model's inference XLA options): the cost of
    one unguided sampling step; `beside`: a reference's call, timed in turns with ours."""
    rows = batch_sharding(mesh)
    rng = np.random.default_rng(s.seed + 2)
    x = jax.tree.map(lambda a: put_global(a, rows), example.model_input(rng, batch))
    t = put_global(rng.random(batch, np.float32), rows)
    y = put_global(rng.integers(0, s.classes, batch).astype(np.int32), rows)
    fn = jit_forward(model, mesh, inference_compiler_options(model))
    compile_times, compiled = _lower_and_compile(fn, params, x, t, y)
    (first_call_s, times), *other = _timed_calls(
        [_blocking(lambda: compiled(params, x, t, y)), *([beside] if beside else [])], s)
    out = {**compile_times,
           **_timings(compiled, first_call_s, times, "call", batch, mesh, peak, example)}
    if other:
        out["reference"] = _beside(*other[0], "call")
    return out


def bench_sample(spec: BenchModel, model: nn.Module, params, example: Example, s: BenchSettings,
                 mesh: Mesh) -> dict:
    """Cohorts of `s.n` with each sampler (and `s.sampler_options`, checked by the process), from
    the example's start (None: the prior): compile + first run apart, then the median of
    `s.repeats` runs. Guidance None: the config's sampling.guidance."""
    process = spec.process
    labels_N = (np.arange(s.n) % s.classes).astype(np.int32)
    w = float(sampling_defaults(spec.config)["guidance"] if s.guidance is None else s.guidance)
    guided = w != 0.0
    start = example.start(s.n)
    batch = s.sample_batch
    if batch is None:
        batch = auto_batch_size(model.apply, params, example.row, num_samples=s.n, mesh=mesh,
                                guided=guided)
    denoiser = Denoiser(model.apply, params, s.classes, inference_compiler_options(model))

    def run(sampler: str, options: dict, seed: int) -> float:
        t0 = time.perf_counter()
        settings = SamplingSettings(sampler, s.steps, w, options, seed=seed, batch_size=batch,
                                    mesh=mesh)
        generate(denoiser, process=process, settings=settings, labels_N=labels_N,
                 shape=example.row, mask=example.mask, start=start)
        return time.perf_counter() - t0  # generate returns host arrays: the work is done

    out = {}
    for sampler in s.samplers:
        options = process.sampler_options(sampler, s.sampler_options)
        first = run(sampler, options, s.seed)
        times = [run(sampler, options, s.seed + 1 + i) for i in range(s.repeats)]
        median = statistics.median(times)
        out[sampler] = {
            "compile_and_first_run_s": first, "seconds_per_run": median,
            "seconds_min": min(times), "seconds_max": max(times), "times_s": times,
            "samples_x_steps_per_s": s.n * s.steps / median, "samples_per_s": s.n / median,
            **example.rates(s.n * s.steps / median, "_x_steps_per_s"),
            **example.rates(s.n / median),
            "guidance": w, "model_calls_per_step": 2 if guided else 1, "batch_size": int(batch),
            "sampler_options": options, "peak_device_memory_bytes": peak_device_memory_bytes(),
        }
    return out
