"""The forward (noising) process q(x_t | x0)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from genodiff_jax.diffusion.predictions import expand_like
from genodiff_jax.diffusion.schedules import Schedule


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
    """x_t = alpha_t x0 + sigma_t eps for integer steps t [B] and x0, eps [B, ...].

    Mixed in at least float32; the result has the dtype of x0 and eps.
    """
    out_dtype = jnp.result_type(x0, eps)
    dtype = jnp.promote_types(out_dtype, jnp.float32)
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    alpha_t = expand_like(alpha_t, x0).astype(dtype)
    sigma_t = expand_like(sigma_t, x0).astype(dtype)
    return (alpha_t * x0.astype(dtype) + sigma_t * eps.astype(dtype)).astype(out_dtype)
