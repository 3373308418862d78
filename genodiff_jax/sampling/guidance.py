"""Classifier-free guidance and the `denoise_fn` the samplers call (DESIGN 1.2).

eps_guided = (1 + w) eps_cond - w eps_uncond. Guidance is applied in the model-output space:
out_guided = (1 + w) out_cond - w out_uncond, whatever the network predicts. For eps that is the
formula itself; for v and x0 it is the same thing, because at fixed (x_t, t) every conversion to
eps is affine in the output with coefficients shared by both calls (eps = a out + b x_t:
v -> a = alpha_t, b = sigma_t; x0 -> a = -alpha_t / sigma_t, b = 1 / sigma_t), and the weights
(1 + w) and -w sum to 1, so eps(out_guided) = (1 + w) eps(out_cond) - w eps(out_uncond) exactly.
Guiding the output keeps `denoise_fn` free of the schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from genodiff_jax.diffusion.gaussian_samplers import DenoiseFn

ApplyFn = Callable[..., jax.Array]


def guide(out_cond: jax.Array, out_uncond: jax.Array, w: float | jax.Array) -> jax.Array:
    """(1 + w) out_cond - w out_uncond, in at least float32."""
    dtype = jnp.promote_types(out_cond.dtype, jnp.float32)
    w = jnp.asarray(w, dtype)
    guided = (1.0 + w) * out_cond.astype(dtype) - w * out_uncond.astype(dtype)
    return guided.astype(out_cond.dtype)


def make_denoise_fn(
    apply_fn: ApplyFn,
    params: Any,
    labels_B: jax.Array,
    *,
    time_fn: Callable[[jax.Array], jax.Array],
    guidance: float | jax.Array = 0.0,
    null_label: int | None = None,
) -> DenoiseFn:
    """`denoise_fn(x_t, t_B) -> model output` for process times t_B (training-grid steps).

    The model sees `time_fn(t_B)` (the process's `model_time`) and the labels. With guidance the
    conditional and the null-label ("no label", class `null_label` = num_classes) outputs come from
    ONE model call on a batch of 2B rows, interleaved (row 2b conditional, 2b + 1 unconditional)
    rather than concatenated: a batch split over devices then stays on its devices, with no
    reshuffle across the mesh. A Python `guidance` of 0 makes the plain conditional call; a traced
    weight always guides.
    """
    labels_B = jnp.asarray(labels_B, jnp.int32)
    guided = not (isinstance(guidance, int | float) and guidance == 0)
    if guided and null_label is None:
        raise ValueError("guidance needs null_label (the model's num_classes)")

    def denoise_fn(x_t: jax.Array, t_B: jax.Array) -> jax.Array:
        t_cont_B = time_fn(t_B)
        if not guided:
            return apply_fn({"params": params}, x_t, t_cont_B, labels_B, train=False)
        B = labels_B.shape[0]
        x_2B = jax.tree.map(lambda a: jnp.stack([a, a], axis=1).reshape(2 * B, *a.shape[1:]), x_t)
        t_2B = jnp.repeat(t_cont_B, 2)
        y_2B = jnp.stack([labels_B, jnp.full_like(labels_B, null_label)], axis=1).reshape(2 * B)
        out_2B = apply_fn({"params": params}, x_2B, t_2B, y_2B, train=False)
        out_Bx2 = out_2B.reshape(B, 2, *out_2B.shape[1:])
        return guide(out_Bx2[:, 0], out_Bx2[:, 1], guidance)

    return denoise_fn
