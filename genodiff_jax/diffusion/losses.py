"""Losses over the real (unmasked) feature components only.

Padded slots (mask False) count neither in the numerator nor in the denominator, and
their gradient is exactly zero even when they hold inf or NaN. Losses are float32 scalars
whatever the input dtype (bf16 squares lose too much precision to sum over 10^5 slots).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _masked_mean(
    err_fn: Callable[[jax.Array], jax.Array],
    a: jax.Array,
    b: jax.Array,
    mask: jax.Array,
    weights: jax.Array | None,
) -> jax.Array:
    """mean_b w_b * (sum over real slots of err_fn(a - b)) / (number of real slots)."""
    dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
    mask = jnp.broadcast_to(jnp.asarray(mask, dtype=bool), a.shape)
    # Zero the difference before err_fn: where() then also stops NaN gradients from padding.
    diff = jnp.where(mask, a.astype(dtype) - b.astype(dtype), 0.0)
    reduce_axes = tuple(range(1, a.ndim))
    err_b = jnp.sum(err_fn(diff), axis=reduce_axes)
    n_real_b = jnp.sum(mask, axis=reduce_axes).astype(dtype)
    per_example = err_b / jnp.maximum(n_real_b, 1.0)
    if weights is not None:
        per_example = per_example * jnp.asarray(weights, dtype=dtype)
    return jnp.mean(per_example)


def masked_mse(
    out: jax.Array, target: jax.Array, mask: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """Mean squared error over real components: sum(mask (out - target)^2) / (B sum(mask)).

    out, target [B, G, K]; mask [G, K] (or [B, G, K]) bool; weights [B] optional,
    multiplying each example's mean. With a per-example mask each example is averaged
    over its own real slots before the batch mean.
    """
    return _masked_mean(jnp.square, out, target, mask, weights)


def masked_mae(
    a: jax.Array, b: jax.Array, mask: jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """Mean absolute error over real components (validation: mean |x0_hat - x0|)."""
    return _masked_mean(jnp.abs, a, b, mask, weights)
