"""A whole synthetic cohort at once: large batches split over the devices, one compiled sampler.

Each batch is one call of a jitted function that draws x_T, runs the sampler's scan over the time
grid and returns x_0, with rows split over the mesh's "data" axis. It is compiled once per (feature
shape, batch size, sampler, number of steps) and cached across calls; the only Python loop is over
batches. Row i of the cohort draws all its randomness from its own key fold_in(key, i), so a cohort
depends on (key, labels, params, settings) only: not on the batch size, the device count or the
batch a row falls in.
"""

from __future__ import annotations

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

from genodiff_jax.diffusion import Prediction, Schedule, get_prediction
from genodiff_jax.models.registry import inference_compiler_options
from genodiff_jax.sampling.guidance import ApplyFn, make_denoise_fn
from genodiff_jax.sampling.samplers import Sampler, check_grid, get_sampler, time_grid
from genodiff_jax.sharding import (
    batch_sharding,
    make_mesh,
    place_replicated,
    put_global,
    replicated,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_PER_DEVICE = 4096  # the cap when device memory is unknown (CPU) or plentiful
MEMORY_FRACTION = 0.5  # share of the free device memory a batch may plan to use
_PROBE_BATCH = 8


def _param_bytes(params: Any) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64) * np.dtype(x.dtype).itemsize
                   for x in jax.tree_util.tree_leaves(params)))


def bytes_per_sample(apply_fn: ApplyFn, params: Any, feature_shape: tuple[int, int], *,
                     guided: bool) -> int | None:
    """Device bytes one sample needs while sampling, from XLA's memory analysis of one model call
    at a small probe batch (compiled on abstract inputs, nothing allocated), plus the sampler's own
    arrays (x_t, noise, x0_hat, eps_hat, the previous x0_hat, ...). None when XLA gives no analysis.
    """
    rows = _PROBE_BATCH * (2 if guided else 1)
    spec = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)  # noqa: E731
    try:
        compiled = jax.jit(
            lambda p, x, t, y: apply_fn({"params": p}, x, t, y, train=False)
        ).lower(jax.tree.map(spec, params), jax.ShapeDtypeStruct((rows, *feature_shape), jnp.float32),
                jax.ShapeDtypeStruct((rows,), jnp.float32),
                jax.ShapeDtypeStruct((rows,), jnp.int32)).compile()
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - an estimate only; fall back to the default cap
        return None
    if stats is None:
        return None
    model_bytes = stats.temp_size_in_bytes + stats.output_size_in_bytes
    return math.ceil(model_bytes / _PROBE_BATCH) + 12 * 4 * math.prod(feature_shape)


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


def auto_batch_size(apply_fn: ApplyFn, params: Any, feature_shape: tuple[int, int], *,
                    num_samples: int, mesh: Mesh, guided: bool) -> int:
    """`choose_batch_size` with the device's free memory and `bytes_per_sample` (CPU: the cap)."""
    device = mesh.devices.flat[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    free = None
    if stats and "bytes_limit" in stats:
        free = stats["bytes_limit"] - stats.get("bytes_in_use", 0) - _param_bytes(params)
    per_sample = bytes_per_sample(apply_fn, params, feature_shape, guided=guided) if free else None
    batch = choose_batch_size(num_samples, mesh.size, per_sample_bytes=per_sample,
                              free_bytes_per_device=free)
    log.info("batch size %d (%s bytes a sample, %s bytes free a device)", batch, per_sample, free)
    return batch


@functools.lru_cache(maxsize=16)
def _batch_sampler(apply_fn: ApplyFn, prediction: Prediction, sampler: Sampler,
                   options: tuple[tuple[str, Any], ...], T_train: int, guided: bool,
                   null_label: int | None, clip_x0: float | None, mesh: Mesh) -> Callable:
    """The jitted `(params, schedule, ts, mask, labels_B, rows_B, key, w) -> x0_B` (cached)."""
    rows = batch_sharding(mesh)
    repl = replicated(mesh)

    def sample_batch(params, schedule: Schedule, ts, mask_GxK, labels_B, rows_B, key, w):
        # Everything random about row i comes from fold_in(key, i): batch-size independent.
        keys_B = jax.vmap(lambda i: jax.random.fold_in(key, i))(rows_B)
        split_Bx2 = jax.vmap(jax.random.split)(keys_B)
        init_B, noise_B = split_Bx2[:, 0], split_Bx2[:, 1]
        x_T = jax.vmap(lambda k: jax.random.normal(k, mask_GxK.shape, jnp.float32))(init_B)
        x_T = jax.lax.with_sharding_constraint(x_T, rows)
        denoise_fn = make_denoise_fn(apply_fn, params, labels_B, T_train=T_train,
                                     guidance=w if guided else 0.0, null_label=null_label)
        return sampler(denoise_fn, schedule, noise_B, x_T, ts, prediction=prediction,
                       mask=mask_GxK, clip_x0=clip_x0, **dict(options))

    model = getattr(apply_fn, "__self__", None)
    xla_options = inference_compiler_options(model) if model is not None else None
    return jax.jit(sample_batch, in_shardings=(repl, repl, repl, repl, rows, rows, repl, repl),
                   out_shardings=rows, compiler_options=xla_options)


def _to_host(x: jax.Array) -> np.ndarray:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def generate(
    apply_fn: ApplyFn,
    params: Any,
    *,
    schedule: Schedule,
    prediction: Prediction | str,
    sampler: str | Sampler,
    steps: int | None,
    labels_N: np.ndarray,
    mask_GxK: np.ndarray,
    guidance: float = 0.0,
    key: jax.Array,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    T_train: int | None = None,
    num_classes: int | None = None,
    sampler_options: Mapping[str, Any] | None = None,
    clip_x0: float | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Sample features [N, G, K] float32 (padded slots 0) for the labels `labels_N`.

    `schedule` is the training schedule (T_train = its length unless given); `steps` evenly spread
    steps respace it (None: all). `params` are used as given: pass the EMA params. `num_classes`
    (the null label for guidance) defaults to `apply_fn.__self__.num_classes` for a bound flax
    `model.apply`. `batch_size` None: from the free device memory (at most 4096 a device), rounded
    to a multiple of the device count; the last batch is padded. `sampler_options`: e.g.
    {"eta": 1.0} for DDIM (static: a new value compiles again). The guidance weight is traced, so
    changing it does not recompile (w = 0 vs w != 0 does: w = 0 makes one plain model call).
    """
    prediction = get_prediction(prediction) if isinstance(prediction, str) else prediction
    sampler_fn = get_sampler(sampler) if isinstance(sampler, str) else sampler
    labels_N = np.asarray(labels_N, np.int32)
    mask_GxK = np.asarray(mask_GxK, bool)
    if labels_N.ndim != 1 or mask_GxK.ndim != 2:
        raise ValueError(f"need labels [N] and a mask [G, K], got {labels_N.shape}, "
                         f"{mask_GxK.shape}")
    T_train = int(T_train or schedule.num_steps)
    sched, ts = time_grid(schedule, steps)
    check_grid(ts, sched.num_steps)
    guided = float(guidance) != 0.0
    if num_classes is None:
        num_classes = getattr(getattr(apply_fn, "__self__", None), "num_classes", None)
    if guided and num_classes is None:
        raise ValueError("guidance needs num_classes (the null label)")
    mesh = mesh if mesh is not None else make_mesh()
    n = labels_N.shape[0]
    if batch_size is None:
        batch_size = auto_batch_size(apply_fn, params, mask_GxK.shape, num_samples=n, mesh=mesh,
                                     guided=guided)
    batch_size = -(-int(batch_size) // mesh.size) * mesh.size
    fn = _batch_sampler(apply_fn, prediction, sampler_fn,
                        tuple(sorted((sampler_options or {}).items())), T_train, guided,
                        num_classes if guided else None, clip_x0, mesh)

    rows = batch_sharding(mesh)
    # Replicated on the mesh whatever the number of processes (device_put of host values onto
    # devices of other processes fails); trained parameters already there are not copied.
    params = place_replicated(params, mesh)
    sched, ts, mask, key, w = place_replicated(
        (sched, ts, np.asarray(mask_GxK), key, np.float32(guidance)), mesh)
    num_batches = -(-n // batch_size)
    out = np.empty((n, *mask_GxK.shape), np.float32)

    def fetch(b: int, x: jax.Array) -> None:
        lo = b * batch_size
        out[lo:lo + batch_size] = _to_host(x)[: n - lo]

    start, first = time.perf_counter(), None
    pending = None
    for b in _progress(range(num_batches), progress):
        row_ids = np.arange(b * batch_size, (b + 1) * batch_size, dtype=np.int32)
        labels_B = np.where(row_ids < n, labels_N[np.minimum(row_ids, max(n - 1, 0))], 0)
        x0 = fn(params, sched, ts, mask, put_global(labels_B.astype(np.int32), rows),
                put_global(row_ids, rows), key, w)
        # Dispatch batch b before copying b - 1 to the host, so the two overlap.
        if pending is not None:
            fetch(*pending)
        pending = (b, x0)
        if first is None:
            jax.block_until_ready(x0)
            first = time.perf_counter() - start
    if pending is not None:
        fetch(*pending)
    total = time.perf_counter() - start
    log.info("sampled %d rows in %d batches of %d: %.2f s (first batch, with compilation, "
             "%.2f s)", n, num_batches, batch_size, total, first or 0.0)
    return out


def _progress(it, enabled: bool):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc="sampling", unit="batch")
