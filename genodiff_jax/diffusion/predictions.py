"""What the denoiser outputs (eps, v or x0) and the conversions between them.

All conversions assume x_t = alpha_t x0 + sigma_t eps with alpha_t^2 + sigma_t^2 = 1.
alpha_t and sigma_t may be scalars, [B] or already broadcastable against x [B, G, K].
Arithmetic runs in at least float32 and the result has the dtype of the x-like inputs,
so bf16 activations stay bf16 without bf16 rounding inside the conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from genodiff_jax.registry import Registry

DEFAULT_PREDICTION = "eps"


def expand_like(a: jax.Array, x: jax.Array) -> jax.Array:
    """Append unit axes to a ([B] or scalar) so it broadcasts against x of any rank."""
    a = jnp.asarray(a)
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim))


def _compute_dtype(*xs: jax.Array) -> tuple[jnp.dtype, jnp.dtype]:
    """(dtype to compute in, dtype to return) for x-like inputs."""
    out_dtype = jnp.result_type(*xs)
    return jnp.promote_types(out_dtype, jnp.float32), out_dtype


def _coefs(alpha: jax.Array, sigma: jax.Array, x: jax.Array, dtype) -> tuple[jax.Array, ...]:
    return expand_like(alpha, x).astype(dtype), expand_like(sigma, x).astype(dtype)


def eps_to_x0(x_t: jax.Array, eps: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    """x0 = (x_t - sigma_t eps) / alpha_t."""
    dtype, out_dtype = _compute_dtype(x_t, eps)
    alpha_t, sigma_t = _coefs(alpha, sigma, x_t, dtype)
    return ((x_t.astype(dtype) - sigma_t * eps.astype(dtype)) / alpha_t).astype(out_dtype)


def x0_to_eps(x_t: jax.Array, x0: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    """eps = (x_t - alpha_t x0) / sigma_t."""
    dtype, out_dtype = _compute_dtype(x_t, x0)
    alpha_t, sigma_t = _coefs(alpha, sigma, x_t, dtype)
    return ((x_t.astype(dtype) - alpha_t * x0.astype(dtype)) / sigma_t).astype(out_dtype)


def v_from_x0_eps(x0: jax.Array, eps: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    """v = alpha_t eps - sigma_t x0 (Salimans & Ho 2022)."""
    dtype, out_dtype = _compute_dtype(x0, eps)
    alpha_t, sigma_t = _coefs(alpha, sigma, x0, dtype)
    return (alpha_t * eps.astype(dtype) - sigma_t * x0.astype(dtype)).astype(out_dtype)


def v_to_x0(x_t: jax.Array, v: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    """x0 = alpha_t x_t - sigma_t v."""
    dtype, out_dtype = _compute_dtype(x_t, v)
    alpha_t, sigma_t = _coefs(alpha, sigma, x_t, dtype)
    return (alpha_t * x_t.astype(dtype) - sigma_t * v.astype(dtype)).astype(out_dtype)


def v_to_eps(x_t: jax.Array, v: jax.Array, alpha: jax.Array, sigma: jax.Array) -> jax.Array:
    """eps = sigma_t x_t + alpha_t v."""
    dtype, out_dtype = _compute_dtype(x_t, v)
    alpha_t, sigma_t = _coefs(alpha, sigma, x_t, dtype)
    return (sigma_t * x_t.astype(dtype) + alpha_t * v.astype(dtype)).astype(out_dtype)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A parameterisation of the network output.

    target(x0, eps, alpha, sigma): what the network is trained to output.
    to_x0_eps(out, x_t, alpha, sigma) -> (x0_hat, eps_hat): how samplers read the output.
    """

    name: str
    target: Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
    to_x0_eps: Callable[[jax.Array, jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


PREDICTIONS: Registry[Prediction] = Registry("prediction")


def register_prediction(prediction: Prediction) -> Prediction:
    """Add a `Prediction` to the registry under its name."""
    return PREDICTIONS.register(prediction.name, prediction)


def get_prediction(name: str) -> Prediction:
    """The registered prediction `name` ("eps", "v" or "x0")."""
    return PREDICTIONS[name]


register_prediction(
    Prediction(
        name="eps",
        target=lambda x0, eps, alpha, sigma: eps,
        to_x0_eps=lambda out, x_t, alpha, sigma: (eps_to_x0(x_t, out, alpha, sigma), out),
    )
)

register_prediction(
    Prediction(
        name="x0",
        target=lambda x0, eps, alpha, sigma: x0,
        to_x0_eps=lambda out, x_t, alpha, sigma: (out, x0_to_eps(x_t, out, alpha, sigma)),
    )
)

register_prediction(
    Prediction(
        name="v",
        target=v_from_x0_eps,
        to_x0_eps=lambda out, x_t, alpha, sigma: (
            v_to_x0(x_t, out, alpha, sigma),
            v_to_eps(x_t, out, alpha, sigma),
        ),
    )
)
