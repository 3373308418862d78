"""A whole synthetic cohort at once: large batches split over the devices, one compiled sampler.

Each batch is one call of a jitted function that draws x_T, runs the sampler's scan over the time
grid and returns x_0, with rows split over the mesh's "data" axis. It is compiled once per (feature
shape, batch size, sampler, number of steps) and cached across calls; the only Python loop is over
batches. Row i of the cohort draws all its randomness from its own key fold_in(key, i), so a cohort
depends on (key, labels, params, settings) only: not on the batch size, the device count or the
batch a row falls in.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from genodiff_jax.diffusion.gaussian_samplers import reporting_non_finite_steps
from genodiff_jax.diffusion.process import Process
from genodiff_jax.sampling.guidance import ApplyFn, make_denoise_fn
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sharding import (
    batch_sharding,
    make_mesh,
    place_replicated,
    put_global,
    replicated,
)
from genodiff_jax.train.state import row_spec

log = logging.getLogger(__name__)

DEFAULT_BATCH_PER_DEVICE = 4096  # the cap when an accelerator's memory is plentiful or unknown
# The cap on CPU, which reports no memory limit: there a bigger batch is no faster while its
# activations grow with it (docs/benchmarks.md, "The sampler's batch on CPU": LCT's panel model,
# 1024 people x 4 steps, 67.0 / 70.6 / 74.4 s and 1.4 / 3.3 / 9.0 GB at 16 / 256 / 1024; the
# demo's gene-PCA model fastest at 256; the whole LCT cohort in one batch held 17.9 GB).
HOST_BATCH_PER_DEVICE = 256
MEMORY_FRACTION = 0.5  # share of the free device memory a batch may plan to use
_PROBE_BATCH = 8


def _param_bytes(params: Any) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize
                   for x in jax.tree_util.tree_leaves(params)))


def bytes_per_sample(apply_fn: ApplyFn, params: Any, row: Any, *, guided: bool) -> int | None:
    """Device bytes one sample needs while sampling, from XLA's memory analysis of one model call
    at a small probe batch (compiled on abstract inputs, nothing allocated), plus the sampler's own
    arrays (x_t, noise, x0_hat, eps_hat, the previous x0_hat, ...). None when XLA gives no analysis.
    """
    rows = _PROBE_BATCH * (2 if guided else 1)
    row = row_spec(row)
    spec = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    try:
        compiled = jax.jit(
            lambda p, x, t, y: apply_fn({"params": p}, x, t, y, train=False)
        ).lower(jax.tree.map(spec, params),
                jax.tree.map(lambda s: jax.ShapeDtypeStruct((rows, *s.shape), s.dtype), row),
                jax.ShapeDtypeStruct((rows,), jnp.float32),
                jax.ShapeDtypeStruct((rows,), jnp.int32)).compile()
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - an estimate only; fall back to the default cap
        return None
    if stats is None:
        return None
    model_bytes = stats.temp_size_in_bytes + stats.output_size_in_bytes
    row_bytes = sum(4 * math.prod(s.shape) for s in jax.tree.leaves(row))
    return math.ceil(model_bytes / _PROBE_BATCH) + 12 * row_bytes


def choose_batch_size(num_samples: int, num_devices: int, *, per_sample_bytes: int | None = None,
                      free_bytes_per_device: int | None = None,
                      max_per_device: int = DEFAULT_BATCH_PER_DEVICE) -> int:
    """A batch size: a multiple of the device count, at most what memory and the cohort need.

    Per device: MEMORY_FRACTION of the free memory over the bytes a sample needs, capped at
    `max_per_device` (the cap alone when either is unknown).
    """
    per_device = max_per_device
    if per_sample_bytes and free_bytes_per_device:
        fits = int(MEMORY_FRACTION * free_bytes_per_device // per_sample_bytes)
        per_device = max(1, min(per_device, fits))
    needed = -(-num_samples // num_devices)  # no bigger than the cohort itself, rounded up
    return max(1, min(per_device, needed)) * num_devices


def auto_batch_size(apply_fn: ApplyFn, params: Any, row: Any, *, num_samples: int, mesh: Mesh,
                    guided: bool) -> int:
    """`choose_batch_size` with the device's free memory and `bytes_per_sample` (CPU, which
    reports none: `HOST_BATCH_PER_DEVICE`)."""
    device = mesh.devices.flat[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    free = None
    if stats and "bytes_limit" in stats:
        free = stats["bytes_limit"] - stats.get("bytes_in_use", 0) - _param_bytes(params)
    per_sample = bytes_per_sample(apply_fn, params, row_spec(row), guided=guided) if free else None
    cap = HOST_BATCH_PER_DEVICE if device.platform == "cpu" else DEFAULT_BATCH_PER_DEVICE
    batch = choose_batch_size(num_samples, mesh.size, per_sample_bytes=per_sample,
                              free_bytes_per_device=free, max_per_device=cap)
    log.info("batch size %d (%s bytes a sample, %s bytes free a device)", batch, per_sample, free)
    return batch


@functools.lru_cache(maxsize=16)
def _batch_sampler(apply_fn: ApplyFn, process: Process, sampler: str,
                   options: tuple[tuple[str, Any], ...], row_key: tuple, guided: bool,
                   null_label: int | None, mesh: Mesh,
                   compiler_options: tuple[tuple[str, str], ...] | None) -> Callable:
    """The jitted `(params, grid, mask, labels_B, rows_B, key, w, start_B) -> x0_B` (cached);
    `start_B` None draws x_T from the process's prior."""
    rows = batch_sharding(mesh)
    repl = replicated(mesh)
    row = jax.tree.unflatten(*row_key)  # (treedef, leaves): a hashable cache key

    def sample_batch(params, grid, mask, labels_B, rows_B, key, w, start_B):
        # Everything random about row i comes from fold_in(key, i): batch-size independent.
        keys_B = jax.vmap(lambda i: jax.random.fold_in(key, i))(rows_B)
        split_Bx2 = jax.vmap(jax.random.split)(keys_B)
        init_B, noise_B = split_Bx2[:, 0], split_Bx2[:, 1]
        x_T = start_B if start_B is not None else jax.vmap(lambda k: process.prior(k, row))(init_B)
        x_T = jax.lax.with_sharding_constraint(x_T, rows)
        denoise_fn = make_denoise_fn(apply_fn, params, labels_B, time_fn=process.model_time,
                                     guidance=w if guided else 0.0, null_label=null_label)
        return process.sample(sampler, denoise_fn, grid, noise_B, x_T, mask=mask,
                              options=dict(options))

    return jax.jit(sample_batch, in_shardings=(repl, repl, repl, rows, rows, repl, repl, rows),
                   out_shardings=rows,
                   compiler_options=dict(compiler_options) if compiler_options else None)


def _to_host(x: jax.Array) -> np.ndarray:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """What a sampler calls: `apply(params, x, t, y)`, the parameters (pass the EMA ones), the
    number of classes (the null label, needed for guidance) and XLA options for the compiled
    sampler (`models.inference_compiler_options`)."""

    apply: ApplyFn
    params: Any
    num_classes: int | None = None
    compiler_options: Mapping[str, str] | None = None


def trained_denoiser(trained) -> Denoiser:
    """The `Denoiser` of a `train.trained.TrainedModel`."""
    from genodiff_jax.models import inference_compiler_options

    return Denoiser(trained.model.apply, trained.params, trained.num_classes,
                    inference_compiler_options(trained.model))


def generate(denoiser: Denoiser, *, process: Process, settings: SamplingSettings,
             labels_N: np.ndarray, shape: Any, mask: np.ndarray | None = None, start: Any = None,
             key: jax.Array | None = None, progress: bool = False) -> np.ndarray | dict:
    """Sample `len(labels_N)` examples with `settings` (sampler, steps, guidance, options,
    batch size, mesh; `key` overrides the one of its seed).

    `shape`: one example's shape (float32 features), or its ShapeDtypeStruct(s). `start` (host
    arrays with rows first, optional): each row's starting state instead of the process's prior
    (masked diffusion: the tokens to keep, MASK elsewhere, and the positions). `mask` (optional)
    marks the real slots of an example, which the process keeps (Gaussian features: padded slots
    come out 0; tokens: left as they start). Guidance needs `denoiser.num_classes`. Batch size
    None: from the free device memory (at most 4096 a device; 256 on CPU), rounded to a multiple
    of the device count; the last batch is padded. The sampler's options are static (a new value
    compiles again); the guidance weight is traced, so changing it does not recompile (w = 0 vs
    w != 0 does: w = 0 makes one plain model call). Returns x_0 [N, ...], or a dict of such
    arrays where the sampler returns more (a masked `start` with "mean": `diffusion.masked`).
    """
    apply_fn, params, num_classes = denoiser.apply, denoiser.params, denoiser.num_classes
    compiler_options = denoiser.compiler_options
    sampler, steps, guidance = settings.sampler, settings.steps, float(settings.guidance or 0.0)
    batch_size, mesh = settings.batch_size, settings.mesh
    key = settings.key if key is None else key
    labels_N = np.asarray(labels_N, np.int32)
    row = row_spec(tuple(int(d) for d in shape) if isinstance(shape, tuple | list) else shape)
    if labels_N.ndim != 1:
        raise ValueError(f"need labels [N], got {labels_N.shape}")
    if mask is not None and isinstance(row, jax.ShapeDtypeStruct) and np.shape(mask) != row.shape:
        raise ValueError(f"mask {np.shape(mask)} does not match the sample shape {row.shape}")
    options = dict(settings.options or {})  # checked by resolve_sampling
    grid = process.sampling_grid(steps)
    guided = float(guidance) != 0.0
    if guided and num_classes is None:
        raise ValueError("guidance needs num_classes (the null label)")
    mesh = mesh if mesh is not None else make_mesh()
    n = labels_N.shape[0]
    if batch_size is None:
        batch_size = auto_batch_size(apply_fn, params, row, num_samples=n, mesh=mesh,
                                     guided=guided)
    batch_size = -(-int(batch_size) // mesh.size) * mesh.size
    xla = tuple(sorted(compiler_options.items())) if compiler_options else None
    row_key = (jax.tree.structure(row), tuple(jax.tree.leaves(row)))
    sampler_key = (apply_fn, process, sampler, tuple(sorted(options.items())), row_key, guided,
                   num_classes if guided else None, mesh, xla)
    fn = _batch_sampler(*sampler_key)

    rows = batch_sharding(mesh)
    # Replicated on the mesh whatever the number of processes (device_put of host values onto
    # devices of other processes fails); trained parameters already there are not copied.
    params = place_replicated(params, mesh)
    mask_arr = None if mask is None else np.asarray(mask, bool)
    grid, mask_arr, key, w = place_replicated((grid, mask_arr, key, np.float32(guidance)), mesh)
    num_batches = -(-n // batch_size)
    out = None

    def fetch(b: int, x: Any) -> None:
        nonlocal out
        host = jax.tree.map(_to_host, x)
        if out is None:
            out = jax.tree.map(lambda h: np.empty((n, *h.shape[1:]), h.dtype), host)
        lo = b * batch_size
        for o, h in zip(jax.tree.leaves(out), jax.tree.leaves(host)):
            o[lo:lo + batch_size] = h[: n - lo]

    def batch_args(b: int) -> tuple:
        row_ids = np.arange(b * batch_size, (b + 1) * batch_size, dtype=np.int32)
        labels_B = np.where(row_ids < n, labels_N[np.minimum(row_ids, max(n - 1, 0))], 0)
        start_B = None
        if start is not None:
            take = np.minimum(row_ids, n - 1)
            start_B = jax.tree.map(lambda a, i=take: put_global(np.asarray(a[i]), rows), start)
        return (params, grid, mask_arr, put_global(labels_B.astype(np.int32), rows),
                put_global(row_ids, rows), key, w, start_B)

    t0, first = time.perf_counter(), None
    pending = None
    for b in _progress(range(num_batches), progress):
        x0 = fn(*batch_args(b))
        # Dispatch batch b before copying b - 1 to the host, so the two overlap.
        if pending is not None:
            fetch(*pending)
        pending = (b, x0)
        if first is None:
            jax.block_until_ready(x0)
            first = time.perf_counter() - t0
    if pending is not None:
        fetch(*pending)
    total = time.perf_counter() - t0
    log.info("sampled %d rows in %d batches of %d: %.2f s (first batch, with compilation, "
             "%.2f s)", n, num_batches, batch_size, total, first or 0.0)
    if out is None:
        out = np.empty((0,), np.float32)
    if (isinstance(out, np.ndarray) and np.issubdtype(out.dtype, np.floating)
            and not np.isfinite(out).all()):
        bad = np.flatnonzero(~np.isfinite(out.reshape(n, -1)).all(axis=1))
        diagnostic = _batch_sampler.__wrapped__(*sampler_key)  # traced anew, not cached
        steps_hit: list[int] = []
        with reporting_non_finite_steps(steps_hit.append):
            jax.block_until_ready(diagnostic(*batch_args(int(bad[0]) // batch_size)))
        jax.effects_barrier()
        raise NonFiniteSampleError(len(bad), n, int(bad[0]), min(steps_hit, default=None), steps)
    return out


class NonFiniteSampleError(ValueError):
    """Generated values hold a NaN or an inf: names the rows and the first sampler step."""

    def __init__(self, num_bad: int, num_rows: int, first_row: int, step: int | None,
                 num_steps: int | None):
        self.step = step
        where = "at a step"
        if step is not None:
            where = f"from sampler step {step}" + (f" of {num_steps}" if num_steps else "")
        super().__init__(f"the sampler produced NaN or inf {where} (0-based) in {num_bad} of "
                         f"{num_rows} rows, the first row {first_row}; the model or the sampler "
                         "settings diverge (e.g. try clip_x0, fewer guidance, another sampler)")


def _progress(it, enabled: bool):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="sampling", unit="batch")
