"""Speed as a measured, reproducible property: `genodiff bench`.

For a denoiser at feature shape [genes, K], a batch and a compute dtype, three sections:
- `train`: the real train step (`make_train_step` + `jit_train_step`, random features resident on
  the devices as the step's `data`), lowered and compiled apart, its first call apart, warm-up calls
  excluded, then the median / min / max of `repeats` steps, each blocked with `block_until_ready`;
  FLOPs a step from the compiled executable's cost analysis, achieved FLOP/s and, where the device's
  peak is known, MFU. `--batch max` first finds the largest batch whose compiled step fits in device
  memory (XLA's memory analysis of steps compiled on abstract inputs; `largest_train_batch`).
- `forward`: one denoiser call (`model.apply`, train=False) at the batch, timed the same way: the
  cost of one unguided sampling step.
- `sample`: `sampling.cohort.generate` for whole cohorts with the chosen samplers; compile + first
  run apart, then the median of `repeats` runs; samples x steps per second.

Parameters are random (speed does not depend on their values). Results are one JSON-ready dict
with a `machine` block and the command line. The PyTorch reference's CPU figures are embedded
below: where a run matches one (CPU, paper-size model, float32, same shape and batch), its section
gets `reference` and `speedup` (reference seconds / ours).

    genodiff bench --models all --genes 2048 --batch 32 --what train,forward --json runs/b.json
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genodiff_jax.atomic import atomic_file
from genodiff_jax.errors import InputError
from genodiff_jax.models.dense import cast_weights
from genodiff_jax.models.registry import inference_compiler_options

SECTIONS = ("train", "forward", "sample")
# The paper's recipe (diffusion, optimiser, batch) and MLP_CNN_PAPER, for models named with --model.
BASE_CONFIG = "experiments/base.py"

# The PyTorch reference implementation, timed on the 2-core CI CPU: float32, K = 8, 26 classes,
# median of >= 5 steps. "forward" is one denoiser call, i.e. one unguided sampling step. Keyed by
# (model, genes); each section is (batch, seconds). The 26,624-gene call was recorded without its
# batch, so it is kept for the record but never matched.
REFERENCE_CPU: dict[tuple[str, int], dict[str, Any]] = {
    ("mlp_cnn", 2048): {"params": 60.1e6, "train": (32, 2.36), "forward": (32, 0.88)},
    ("mlp_unet", 2048): {"params": 41.6e6, "train": (32, 0.23), "forward": (32, 0.024)},
    ("cnn_unet", 2048): {"params": 18.6e6, "train": (32, 1.96), "forward": (32, 0.92)},
    ("transformer", 2048): {"params": 34.1e6, "train": (32, 5.78), "forward": (32, 1.42)},
    ("mlp_cnn", 26624): {"params": 463e6, "train": (8, 17.3), "forward": (None, 23.5)},
}
REFERENCE_WHAT = "PyTorch reference implementation, 2 CPU cores, float32, median of >= 5 steps"
# The CPU goals: our time at least this many times shorter than the reference's.
GOAL_SPEEDUP = {"train": 1.2, "forward": 2.0}

# --batch max: batches are multiples of BATCH_GRANULE per device, a train step may plan to use
# FIT_FRACTION of the device's free memory (fragmentation, the runtime's own buffers), and the
# search stops once the largest fitting batch is known to within 1/REFINE of itself.
BATCH_GRANULE = 8
FIT_FRACTION = 0.9
REFINE = 8
MAX_BATCH_PER_DEVICE = 1 << 16

# Dense (no 2:4 sparsity) peak TFLOP/s per device: (device_kind substring, bfloat16, float32), first
# match wins. float32 uses the TF32 tensor-core figure: at the default precision XLA runs float32
# dots as TF32 on A100/H100 (jax-ml/jax#18934); pass --peak-tflops 66.9 for an H100 at "highest".
# Source: NVIDIA's H100 and A100 datasheets (which quote with-sparsity figures: halved here), as
# tabulated at https://glennklockwood.com/garden/processors/h100 (H100 SXM5: BF16 989.4, TF32 494.7;
# H200 has the H100's compute with more HBM) and https://glennklockwood.com/garden/processors/A100
# (BF16 312, TF32 156), and H100 PCIe (BF16 1513 / TF32 756 with sparsity) at
# https://archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html. H100 NVL is left unknown.
PEAK_TFLOPS: tuple[tuple[str, float | None, float | None], ...] = (
    ("H100 PCIe", 756.5, 378.0),
    ("H100 NVL", None, None),
    ("H100", 989.4, 494.7),
    ("H200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
)


# -- settings and models ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What to measure and at which size; `batch` None: the config's train.batch_size (or 32)."""

    genes: int = 2048
    components: int = 8
    classes: int = 26
    batch: int | str | None = None  # "max": the largest train batch that fits (`largest_train_batch`)
    memory_limit_gb: float | None = None  # per device, for --batch max; None: the device's own
    dtype: str | None = None  # None: the config's model.dtype (float32 for --model)
    weights_dtype: str = "float32"  # weight matrices in the forward and sample sections
    repeats: int = 5
    warmup: int = 2
    what: tuple[str, ...] = ("train", "forward")
    samplers: tuple[str, ...] = ("ancestral",)
    steps: int = 25
    n: int = 256
    guidance: float = 0.1
    sample_batch: int | None = None  # None: chosen from free device memory, as `genodiff sample`
    peak_tflops: float | None = None  # per device; None: from PEAK_TFLOPS by device kind
    num_devices: int = 0  # 0: all
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class BenchModel:
    """A denoiser and the training recipe around it, as typed values."""

    name: str
    kwargs: dict
    dtype: str
    schedule: str
    num_steps: int  # T
    prediction: str
    p_uncond: float
    ema_decay: float
    batch: int
    optim: Any  # OptimizerConfig
    source: str  # "paper sizes[ with --model-kwargs]" or the config spec


def parse_model_kwargs(text: str | None) -> dict:
    """--model-kwargs: a JSON object of model fields, or one object per model name."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(None, f"--model-kwargs is not valid JSON ({e.msg} at char {e.pos})") from e
    if not isinstance(value, dict):
        raise InputError(None, f"--model-kwargs must be a JSON object, got {type(value).__name__}")
    return value


def _kwargs_for(name: str, overrides: Mapping) -> dict:
    """A flat object applies to every model; an object keyed by model names gives each its own."""
    from genodiff_jax.models import MODELS

    per_model = bool(overrides) and all(k in MODELS and isinstance(v, Mapping)
                                        for k, v in overrides.items())
    return dict(overrides.get(name, {})) if per_model else dict(overrides)


def _plain(value: Any) -> Any:
    """Config values as plain Python (lists back to tuples, as `model_from_config` does)."""
    if isinstance(value, ml_collections.ConfigDict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _from_config(config: ml_collections.ConfigDict, name: str, kwargs: dict,
                 source: str) -> BenchModel:
    from genodiff_jax.train.loop import optimizer_config

    # The lr schedule's length (10,000 steps here) does not change the cost of a step.
    return BenchModel(
        name=name, kwargs={k: _plain(v) for k, v in kwargs.items()},
        dtype=str(config.model.dtype), schedule=str(config.diffusion.schedule),
        num_steps=int(config.diffusion.num_steps), prediction=str(config.diffusion.prediction),
        p_uncond=float(config.train.p_uncond), ema_decay=float(config.train.ema_decay),
        batch=int(config.train.batch_size), optim=optimizer_config(config, 10_000), source=source)


def resolve_models(
    models: Sequence[str] | str | None = None,
    *,
    config: str | None = None,
    model_kwargs: Mapping | None = None,
) -> list[BenchModel]:
    """The models to measure: registered names ("all" for every one) at the paper's sizes (the
    registry's defaults; MLP_CNN_PAPER from experiments/base.py for mlp_cnn) with the base recipe,
    or the model of a config file `path.py[:arg]`; `model_kwargs` overrides fields either way."""
    from genodiff_jax.models import MODELS
    from genodiff_jax.train.loop import load_config

    overrides = dict(model_kwargs or {})
    if config is not None:
        if models:
            raise InputError(None, "give either --config or --model/--models, not both")
        c = load_config(config)
        kwargs = {**_plain(c.model.kwargs), **_kwargs_for(str(c.model.name), overrides)}
        return [_from_config(c, str(c.model.name), kwargs, config)]
    if not models:
        raise InputError(None, "name a model (--model, --models) or a config (--config)")
    names = [models] if isinstance(models, str) else list(models)
    names = [n.strip() for part in names for n in part.split(",") if n.strip()]
    if names == ["all"]:
        names = sorted(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise InputError(None, f"unknown model {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(sorted(MODELS))} or all")
    base = load_config(BASE_CONFIG)
    out = []
    for name in names:
        paper = _plain(base.model.kwargs) if name == base.model.name else {}
        mine = _kwargs_for(name, overrides)
        source = "paper sizes" + (" with --model-kwargs" if mine else "")
        out.append(_from_config(base, name, {**paper, **mine}, source))
    return out


def _build(spec: BenchModel, classes: int) -> nn.Module:
    from genodiff_jax.models import build_model

    if spec.dtype not in ("float32", "bfloat16"):
        raise InputError(None, f"dtype must be float32 or bfloat16, got {spec.dtype!r}")
    try:
        return build_model(spec.name, num_classes=classes, dtype=jnp.dtype(spec.dtype),
                           param_dtype=jnp.float32, **spec.kwargs)
    except TypeError as e:
        raise InputError(None, f"{spec.name}: bad --model-kwargs ({e})") from e


def model_fields(model: nn.Module) -> dict:
    """The module's size fields as JSON values."""
    skip = {"parent", "name", "num_classes", "dtype", "param_dtype"}
    return {f.name: _json_value(getattr(model, f.name)) for f in dataclasses.fields(model)
            if f.name not in skip}


def _json_value(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_json_value(x) for x in v]
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return str(v)


def is_paper_size(model: nn.Module) -> bool:
    """Whether every size field equals the registered defaults (the paper's sizes)."""
    default = type(model)(num_classes=model.num_classes)
    return model_fields(model) == model_fields(default)


# -- the machine -----------------------------------------------------------------------------------

def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Backend, devices, processes, CPU, and the versions that set the speed."""
    device = jax.devices()[0]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "backend": jax.default_backend(), "device_kind": device.device_kind,
        "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(), "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(), "cpus_usable": affinity, "platform": platform.platform(),
        "python": platform.python_version(), "jax": jax.__version__, "jaxlib": _version("jaxlib"),
        "flax": _version("flax"), "optax": _version("optax"), "numpy": np.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS") or None,
    }


def peak_tflops(device_kind: str, dtype: str) -> float | None:
    """Dense peak TFLOP/s of one device of this kind at this compute dtype; None when unknown."""
    for key, bf16, fp32 in PEAK_TFLOPS:
        if key.lower() in device_kind.lower():
            return bf16 if dtype == "bfloat16" else fp32
    return None


# -- measuring -------------------------------------------------------------------------------------

def flops_per_device(compiled: Any) -> float | None:
    """FLOPs of one call per device, from `compiled.cost_analysis()` (a dict, or a list of dicts on
    older JAX: the first is the partitioned program); None when the backend gives none."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(analysis, list | tuple):
        analysis = next((a for a in analysis if a), None)
    if not analysis:
        return None
    flops = analysis.get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


def _memory_analysis(compiled: Any) -> Any:
    try:
        return compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None


def _planned(stats: Any) -> int:
    """Arguments + outputs + temporaries - donated (aliased) bytes: all a call holds at once."""
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def compiled_memory_bytes(compiled: Any) -> int | None:
    """XLA's estimate of one call's peak device memory (per device); None when unavailable."""
    stats = _memory_analysis(compiled)
    if stats is None:
        return None
    return int(getattr(stats, "peak_memory_in_bytes", 0) or 0) or _planned(stats)


def planned_bytes(compiled: Any) -> int | None:
    """The bytes per device a compiled call plans to hold at once, for deciding what fits; None
    when unavailable. Not `peak_memory_in_bytes`: XLA's CPU backend leaves temporaries out of it."""
    stats = _memory_analysis(compiled)
    return None if stats is None else _planned(stats)


def free_device_bytes(mesh) -> int | None:
    """The first device's memory limit less what is in use (GPU/TPU); None where unreported."""
    device = mesh.devices.flat[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def peak_device_memory_bytes() -> int | None:
    """The largest `peak_bytes_in_use` over this process's devices (GPU/TPU); None on CPU. It is the
    process's peak so far, so it covers every section and model measured before it."""
    peaks = []
    for device in jax.local_devices():
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


def _summary(times: list[float], unit: str, batch: int) -> dict:
    median = statistics.median(times)
    return {f"seconds_per_{unit}": median, "seconds_min": min(times), "seconds_max": max(times),
            "times_s": times, "examples_per_s": batch / median}


def _throughput(flops_device: float | None, seconds: float, num_devices: int,
                peak: float | None, unit: str) -> dict:
    flops = None if flops_device is None else flops_device * num_devices
    achieved = None if flops is None else flops / seconds / 1e12
    mfu = None if achieved is None or not peak else achieved / (peak * num_devices)
    return {f"flops_per_{unit}": flops, f"flops_per_{unit}_per_device": flops_device,
            "achieved_tflops": achieved, "peak_tflops_per_device": peak, "mfu": mfu}


def random_params(model: nn.Module, feature_shape: tuple[int, int], mesh, seed: int):
    """Random parameters (N(0, 0.02^2), drawn on the host from the abstract shapes), replicated.

    Speed does not depend on the values, and this skips compiling `model.init`, which on CPU can
    take longer than compiling the model itself.
    """
    from genodiff_jax.models import abstract_params
    from genodiff_jax.sharding import put_replicated

    rng = np.random.default_rng(seed)
    shapes = abstract_params(model, *feature_shape)
    host = jax.tree.map(lambda a: (0.02 * rng.standard_normal(a.shape, np.float32)).astype(a.dtype),
                        shapes)
    return put_replicated(host, mesh)


def _train_program(spec: BenchModel, model: nn.Module, s: BenchSettings, batch: int, mesh):
    """The jitted train step at `batch`, the optimiser it was built with, and the abstract train
    state (shapes, dtypes, shardings) it takes."""
    from genodiff_jax.diffusion import get_prediction, get_schedule
    from genodiff_jax.train.state import abstract_train_state, make_lr_schedule, make_optimizer
    from genodiff_jax.train.step import jit_train_step, make_train_step

    G, K = s.genes, s.components
    tx = make_optimizer(spec.optim)
    step_fn = make_train_step(
        model, get_schedule(spec.schedule, spec.num_steps), get_prediction(spec.prediction),
        np.ones((G, K), bool), tx=tx, lr_schedule=make_lr_schedule(spec.optim), batch_size=batch,
        p_uncond=spec.p_uncond, num_classes=s.classes, ema_decay=spec.ema_decay,
        grad_accum_steps=spec.optim.grad_accum_steps, mesh=mesh)
    abstract = abstract_train_state(model, tx, (G, K), mesh)
    shardings = jax.tree.map(lambda a: a.sharding, abstract)
    return jit_train_step(step_fn, shardings, mesh), tx, abstract


def _resident_rows(batch: int) -> int:
    """Rows of random data the train step gathers its batch from (the cost does not depend on it)."""
    return 4 * batch


def bench_train(spec: BenchModel, model: nn.Module, s: BenchSettings, batch: int, mesh,
                peak: float | None) -> dict:
    """The real train step: compile apart, warm-up excluded, median of `s.repeats` steps."""
    from genodiff_jax.sharding import put_replicated
    from genodiff_jax.train.state import create_train_state
    from genodiff_jax.train.step import put_data

    G, K = s.genes, s.components
    rng = np.random.default_rng(s.seed)
    rows = _resident_rows(batch)
    data = put_data(rng.standard_normal((rows, G, K), np.float32),
                    rng.integers(0, s.classes, rows).astype(np.int32), mesh)
    step, tx, _ = _train_program(spec, model, s, batch, mesh)
    state = create_train_state(model, tx, jax.random.key(s.seed), (G, K), mesh)
    key = put_replicated(jax.random.key(s.seed + 1), mesh)

    t0 = time.perf_counter()
    lowered = step.lower(state, data, key)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0

    times = []
    for _ in range(1 + s.warmup + s.repeats):  # the first call, the warm-up calls, the timed ones
        t0 = time.perf_counter()
        # Everything already lives on the devices: a hidden host transfer would be an error.
        with jax.transfer_guard("disallow"):
            state, metrics = compiled(state, data, key)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    first_call_s, times = times[0], times[1 + s.warmup:]
    loss = float(jax.device_get(metrics["loss"]))
    out = {"lower_s": lower_s, "compile_s": compile_s, "first_call_s": first_call_s,
           **_summary(times, "step", batch),
           **_throughput(flops_per_device(compiled), statistics.median(times), mesh.size, peak,
                        "step"),
           "compiled_memory_bytes_per_device": compiled_memory_bytes(compiled),
           "peak_device_memory_bytes": peak_device_memory_bytes(), "last_loss": loss,
           "loss_finite": bool(np.isfinite(loss))}
    return out


# -- the largest batch that fits ------------------------------------------------------------------

def largest_fitting(fits: Callable[[int], bool], granule: int, start: int,
                    cap: int) -> int | None:
    """The largest multiple of `granule` up to `cap` for which `fits` holds (monotone), to within
    1/REFINE of itself: doubling up (or halving down) from `start`, then bisection. None when not
    even `granule` fits."""
    lo, hi = None, None  # the largest batch known to fit, the smallest known not to
    batch = start
    while lo is None:
        if fits(batch):
            lo = batch
        elif batch <= granule:
            return None
        else:
            hi, batch = batch, max(granule, batch // 2 // granule * granule)
    while hi is None and 2 * lo <= cap:
        if fits(2 * lo):
            lo *= 2
        else:
            hi = 2 * lo
    while hi is not None and hi - lo > max(granule, lo // REFINE):
        mid = (lo + hi) // 2 // granule * granule
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def memory_budget(s: BenchSettings, mesh) -> dict:
    """What a train step may use per device for --batch max: FIT_FRACTION of --memory-limit-gb or
    of the device's free memory. InputError when neither is known (CPUs report no limit)."""
    if s.memory_limit_gb is not None:
        free, source = int(s.memory_limit_gb * 2**30), "--memory-limit-gb"
    else:
        free, source = free_device_bytes(mesh), "device memory_stats"
    if free is None:
        raise InputError(None, f"--batch max: the {jax.default_backend()} devices report no "
                         "memory limit; pass --memory-limit-gb")
    return {"free_bytes_per_device": free, "free_from": source, "fit_fraction": FIT_FRACTION,
            "budget_bytes_per_device": int(FIT_FRACTION * free)}


def largest_train_batch(spec: BenchModel, model: nn.Module, s: BenchSettings,
                        mesh) -> tuple[int, dict]:
    """--batch max: the largest batch (a multiple of BATCH_GRANULE per device) whose compiled train
    step, with its resident data, plans to fit in `memory_budget`, searched from the recipe's batch.
    Each probe is compiled on abstract inputs, so nothing is allocated. Returns the batch and a
    record of the probes."""
    from genodiff_jax.train.step import data_shardings

    G, K = s.genes, s.components
    record = memory_budget(s, mesh)
    budget, probes = record["budget_bytes_per_device"], []
    shard = data_shardings(mesh)

    def fits(batch: int) -> bool:
        step, _, state = _train_program(spec, model, s, batch, mesh)
        rows = _resident_rows(batch)
        data = {"features": jax.ShapeDtypeStruct((rows, G, K), jnp.float32,
                                                 sharding=shard["features"]),
                "labels": jax.ShapeDtypeStruct((rows,), jnp.int32, sharding=shard["labels"]),
                "n": jax.ShapeDtypeStruct((), jnp.int32, sharding=shard["n"])}
        needed = planned_bytes(step.lower(state, data, jax.random.key(0)).compile())
        if needed is None:
            raise InputError(None, f"--batch max: XLA gives no memory analysis on "
                             f"{jax.default_backend()}; pass --batch N")
        probes.append({"batch": batch, "bytes_per_device": needed, "fits": needed <= budget})
        return needed <= budget

    granule = BATCH_GRANULE * mesh.size
    start = -(-spec.batch // granule) * granule  # the recipe's batch, rounded up to the granule
    batch = largest_fitting(fits, granule, start, MAX_BATCH_PER_DEVICE * mesh.size)
    if batch is None:
        raise InputError(None, f"--batch max: {spec.name}'s train step at batch {granule} plans "
                         f"{probes[-1]['bytes_per_device']} bytes a device, over the budget of "
                         f"{budget}")
    return batch, {**record, "granule": granule, "probes": probes}


def parse_batch(text: str | int | None) -> int | str | None:
    """--batch: a positive integer, or "max"."""
    if text is None or text == "max" or isinstance(text, int):
        return text
    try:
        return int(text)
    except ValueError:
        raise InputError(None, f"--batch must be an integer or max, got {text!r}") from None


def bench_forward(model: nn.Module, params, s: BenchSettings, batch: int, mesh,
                  peak: float | None) -> dict:
    """One denoiser call at the batch (train=False): compile apart, median of `s.repeats` calls."""
    from genodiff_jax.sharding import batch_sharding, put_global, replicated

    rows, repl = batch_sharding(mesh), replicated(mesh)
    rng = np.random.default_rng(s.seed + 2)
    x = put_global(rng.standard_normal((batch, s.genes, s.components), np.float32), rows)
    t = put_global(rng.random(batch, np.float32), rows)
    y = put_global(rng.integers(0, s.classes, batch).astype(np.int32), rows)
    fn = jax.jit(lambda p, x, t, y: model.apply({"params": p}, x, t, y, train=False),
                 in_shardings=(repl, rows, rows, rows), out_shardings=rows,
                 compiler_options=inference_compiler_options(model))
    t0 = time.perf_counter()
    lowered = fn.lower(params, x, t, y)
    lower_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0

    times = []
    for _ in range(1 + s.warmup + s.repeats):
        t0 = time.perf_counter()
        with jax.transfer_guard("disallow"):
            out = compiled(params, x, t, y)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    first_call_s, times = times[0], times[1 + s.warmup:]
    return {"lower_s": lower_s, "compile_s": compile_s, "first_call_s": first_call_s,
            **_summary(times, "call", batch),
            **_throughput(flops_per_device(compiled), statistics.median(times), mesh.size, peak,
                         "call"),
            "compiled_memory_bytes_per_device": compiled_memory_bytes(compiled),
            "peak_device_memory_bytes": peak_device_memory_bytes()}


def bench_sample(spec: BenchModel, model: nn.Module, params, s: BenchSettings, mesh) -> dict:
    """Cohorts of `s.n` with each sampler: compile + first run apart, median of `s.repeats`."""
    from genodiff_jax.diffusion import get_schedule
    from genodiff_jax.sampling.cohort import auto_batch_size, generate

    schedule = get_schedule(spec.schedule, spec.num_steps)
    labels = (np.arange(s.n) % s.classes).astype(np.int32)
    mask = np.ones((s.genes, s.components), bool)
    guided = s.guidance != 0.0
    batch = s.sample_batch
    if batch is None:
        batch = auto_batch_size(model.apply, params, mask.shape, num_samples=s.n, mesh=mesh,
                                guided=guided)

    def run(sampler: str, seed: int) -> float:
        t0 = time.perf_counter()
        generate(model.apply, params, schedule=schedule, prediction=spec.prediction,
                 sampler=sampler, steps=s.steps, labels_N=labels, mask_GxK=mask,
                 guidance=s.guidance, key=jax.random.key(seed), batch_size=batch, mesh=mesh,
                 T_train=spec.num_steps, num_classes=s.classes)
        return time.perf_counter() - t0  # generate returns host arrays: the work is done

    out = {}
    for sampler in s.samplers:
        first = run(sampler, s.seed)
        times = [run(sampler, s.seed + 1 + i) for i in range(s.repeats)]
        median = statistics.median(times)
        out[sampler] = {
            "compile_and_first_run_s": first, "seconds_per_run": median,
            "seconds_min": min(times), "seconds_max": max(times), "times_s": times,
            "samples_x_steps_per_s": s.n * s.steps / median, "samples_per_s": s.n / median,
            "model_calls_per_step": 2 if guided else 1, "batch_size": int(batch),
            "peak_device_memory_bytes": peak_device_memory_bytes(),
        }
    return out


def reference_fields(name: str, genes: int, components: int, section: str, batch: int,
                     seconds: float, *, backend: str, paper_size: bool, dtype: str,
                     weights_dtype: str = "float32") -> dict:
    """`reference` and `speedup` for a run the PyTorch figures cover, else nothing.

    The reference is float32 throughout; a bfloat16-weights forward still gets its speedup, with
    `weights_dtype` beside it so the two are never confused.
    """
    ref = REFERENCE_CPU.get((name, genes))
    if (ref is None or backend != "cpu" or not paper_size or dtype != "float32"
            or components != 8 or section not in ref or ref[section][0] != batch):
        return {}
    ref_batch, ref_seconds = ref[section]
    speedup = ref_seconds / seconds
    return {"reference": {"seconds": ref_seconds, "batch": ref_batch, "params": ref["params"],
                          "what": REFERENCE_WHAT},
            "speedup": speedup, "weights_dtype": weights_dtype,
            "goal_speedup": GOAL_SPEEDUP[section],
            "meets_goal": speedup >= GOAL_SPEEDUP[section]}


# -- the whole run ---------------------------------------------------------------------------------

def _check(s: BenchSettings, spec: BenchModel, batch: int | str, mesh) -> None:
    from genodiff_jax.sampling.samplers import SAMPLERS

    bad = [w for w in s.what if w not in SECTIONS]
    if bad or not s.what:
        raise InputError(None, f"--what: unknown section {', '.join(bad) or '(none)'}; "
                         f"known: {', '.join(SECTIONS)}")
    sized = [] if batch == "max" else [("--batch", batch, 1)]
    for name, value, least in (("--genes", s.genes, 1), ("--components", s.components, 1),
                               ("--classes", s.classes, 1), *sized,
                               ("--repeats", s.repeats, 1), ("--warmup", s.warmup, 0),
                               ("--n", s.n, 1)):
        if value < least:
            raise InputError(None, f"{name} must be >= {least}, got {value}")
    if s.sample_batch is not None and s.sample_batch < 1:
        raise InputError(None, f"--sample-batch must be >= 1, got {s.sample_batch}")
    if s.peak_tflops is not None and not s.peak_tflops > 0:
        raise InputError(None, f"--peak-tflops must be > 0, got {s.peak_tflops}")
    if s.memory_limit_gb is not None and not s.memory_limit_gb > 0:
        raise InputError(None, f"--memory-limit-gb must be > 0, got {s.memory_limit_gb}")
    if batch == "max":
        memory_budget(s, mesh)  # raises where the budget is unknown
    elif batch % mesh.size:
        raise InputError(None, f"--batch {batch} must be a multiple of the {mesh.size} devices")
    if "sample" in s.what:
        unknown = [x for x in s.samplers if x not in SAMPLERS]
        if unknown or not s.samplers:
            raise InputError(None, f"unknown sampler {', '.join(unknown) or '(none)'}; "
                             f"known: {', '.join(sorted(SAMPLERS))}")
        if not 1 <= s.steps <= spec.num_steps:
            raise InputError(None, f"--steps must be in [1, T = {spec.num_steps}], got {s.steps}")


def run_bench(
    specs: Sequence[BenchModel],
    settings: BenchSettings,
    *,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Measure every model in `specs` under `settings`; return the JSON-ready result."""
    from genodiff_jax.models import count_params
    from genodiff_jax.sharding import make_mesh

    s = settings
    say = log or (lambda _msg: None)
    try:
        mesh = make_mesh(s.num_devices)
    except ValueError as e:
        raise InputError(None, str(e)) from e
    machine = machine_info()
    G, K = s.genes, s.components
    prepared = []
    for spec in specs:  # check everything before measuring anything
        spec = dataclasses.replace(spec, dtype=s.dtype or spec.dtype)
        batch = spec.batch if s.batch is None else parse_batch(s.batch)
        _check(s, spec, batch, mesh)
        model = _build(spec, s.classes)
        try:
            params = count_params(model, G, K)
        except (ValueError, TypeError, ZeroDivisionError) as e:
            raise InputError(None, f"{spec.name} at features [{G}, {K}]: {e}") from e
        prepared.append((spec, model, batch, params))

    results = []
    for spec, model, batch, num_params in prepared:
        search = None
        if batch == "max":
            say(f"{spec.name}: the largest train batch that fits")
            batch, search = largest_train_batch(spec, model, s, mesh)
        peak = (peak_tflops(machine["device_kind"], spec.dtype) if s.peak_tflops is None
                else s.peak_tflops)
        paper = is_paper_size(model)
        entry = {"model": spec.name, "source": spec.source, "paper_size": paper,
                 "params": num_params, "dtype": spec.dtype, "feature_shape": [G, K],
                 "classes": s.classes, "batch": batch, "num_devices": mesh.size,
                 "diffusion": {"schedule": spec.schedule, "T": spec.num_steps,
                               "prediction": spec.prediction},
                 "model_fields": model_fields(model)}
        if search is not None:
            entry["batch_search"] = search
        ref = dict(backend=machine["backend"], paper_size=paper, dtype=spec.dtype)
        if "train" in s.what:
            say(f"{spec.name}: train step, batch {batch}, {spec.dtype}")
            train = entry["train"] = bench_train(spec, model, s, batch, mesh, peak)
            train.update(reference_fields(spec.name, G, K, "train", batch,
                                          train["seconds_per_step"], **ref))
        if "forward" in s.what or "sample" in s.what:
            params = cast_weights(random_params(model, (G, K), mesh, s.seed), s.weights_dtype)
            entry["weights_dtype"] = s.weights_dtype
            if "forward" in s.what:
                say(f"{spec.name}: forward, batch {batch}, {spec.dtype}")
                forward = entry["forward"] = bench_forward(model, params, s, batch, mesh, peak)
                forward.update(reference_fields(spec.name, G, K, "forward", batch,
                                                forward["seconds_per_call"], **ref,
                                                weights_dtype=s.weights_dtype))
            if "sample" in s.what:
                say(f"{spec.name}: sampling {s.n} x {s.steps} steps with "
                    f"{', '.join(s.samplers)}")
                entry["sample"] = bench_sample(spec, model, params, s, mesh)
            del params
        results.append(entry)

    return {
        "command": command,
        "machine": machine,
        "settings": {**dataclasses.asdict(s), "what": list(s.what), "samplers": list(s.samplers)},
        "results": results,
    }


def write_json(result: dict, path: str | os.PathLike) -> None:
    """The result as indented JSON, written under a temporary name and renamed when complete."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
