"""GroupNorm fused with an optional FiLM scale-shift and activation, with a hand-written backward.

The "fast" layer set's GroupNorm. Same parameters as `flax.linen.GroupNorm` (`scale`, `bias` of
shape [C]) and the same result (float32 statistics, variance as E[x^2] - E[x]^2 like flax's
`use_fast_variance`); the "stock" set's GroupNorm (ops/stock.py) is flax's own with the same call.
What differs is how XLA sees it, which on CPU is most of the cost of the CNN denoisers:

- statistics are per-(row, channel) sums over the middle axes first, then per group: XLA's CPU
  backend reduces [B, L, C] -> [B, C] at memory speed, and flax's [B, L, groups, C / groups]
  reduction much more slowly;
- normalisation, affine, FiLM and activation are one per-(row, channel) multiply-add and one
  elementwise activation, a single pass over x;
- the backward is two passes over (x, dy): sums of g and g * x, then dx = g * A + x * a + b with
  per-(row, channel) a, b, where g = dy * act'(z) is recomputed from x. Autodiff of the same code
  let XLA fuse the backward of whole chains of residual blocks into single loops that recomputed
  each other.

Measured figures: docs/benchmarks.md, "Where the CPU fast paths come from".
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

Activation = Callable[[jax.Array], jax.Array] | None


def _affine_coefficients(
    sum_BxC, sumsq_BxC, scale_C, bias_C, film_scale_BxC, film_shift_BxC, num_groups, count, epsilon
):
    """Per-(row, channel) (mul, add) with gn(x) * (1 + film_scale) + film_shift = x * mul + add."""
    B, C = sum_BxC.shape
    per_group = C // num_groups
    mean_BxN = sum_BxC.reshape(B, num_groups, per_group).sum(-1) / count
    meansq_BxN = sumsq_BxC.reshape(B, num_groups, per_group).sum(-1) / count
    var_BxN = jnp.maximum(meansq_BxN - jnp.square(mean_BxN), 0.0)
    rstd_BxC = jnp.repeat(jax.lax.rsqrt(var_BxN + epsilon), per_group, axis=1)
    mean_BxC = jnp.repeat(mean_BxN, per_group, axis=1)
    gain_BxC = scale_C * (1.0 + film_scale_BxC)
    mul_BxC = rstd_BxC * gain_BxC
    add_BxC = bias_C * (1.0 + film_scale_BxC) + film_shift_BxC - mean_BxC * mul_BxC
    return mul_BxC, add_BxC


def _bcast(a_BxC: jax.Array, ndim: int) -> jax.Array:
    """[B, C] -> [B, 1, ..., 1, C] against an ndim-D activation."""
    B, C = a_BxC.shape
    return a_BxC.reshape((B,) + (1,) * (ndim - 2) + (C,))


def _pre_activation(x, mul_BxC, add_BxC):
    """z = x * mul + add in float32: the normalised, FiLM-modulated input of the activation."""
    return x.astype(jnp.float32) * _bcast(mul_BxC, x.ndim) + _bcast(add_BxC, x.ndim)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def group_norm(
    x: jax.Array,
    scale_C: jax.Array,
    bias_C: jax.Array,
    film_scale_BxC: jax.Array,
    film_shift_BxC: jax.Array,
    num_groups: int,
    epsilon: float,
    activation: Activation,
    out_dtype: jnp.dtype,
) -> jax.Array:
    """activation(GroupNorm(x) * (1 + film_scale) + film_shift) in `out_dtype`, float32 math.

    x: [B, ..., C]; statistics over every axis but the first, within each of `num_groups` groups
    of consecutive channels; scale, bias: [C]; film_scale, film_shift: [B, C], all float32.
    """
    y, _ = _forward(x, scale_C, bias_C, film_scale_BxC, film_shift_BxC, num_groups, epsilon,
                    activation)
    return y.astype(out_dtype)


def _stats(x):
    x32 = x.astype(jnp.float32)
    middle = tuple(range(1, x.ndim - 1))
    return jnp.sum(x32, axis=middle), jnp.sum(jnp.square(x32), axis=middle)


def _forward(x, scale_C, bias_C, film_scale_BxC, film_shift_BxC, num_groups, epsilon, activation):
    B, C = x.shape[0], x.shape[-1]
    count = (C // num_groups) * (x.size // (B * C))
    sum_BxC, sumsq_BxC = _stats(x)
    coefficients = functools.partial(
        _affine_coefficients, num_groups=num_groups, count=count, epsilon=epsilon
    )
    (mul_BxC, add_BxC), coeff_vjp = jax.vjp(
        coefficients, sum_BxC, sumsq_BxC, scale_C, bias_C, film_scale_BxC, film_shift_BxC
    )
    z = _pre_activation(x, mul_BxC, add_BxC)
    y = activation(z) if activation is not None else z
    return y, (mul_BxC, add_BxC, coeff_vjp)


def _group_norm_fwd(x, scale_C, bias_C, film_scale_BxC, film_shift_BxC, num_groups, epsilon,
                    activation, out_dtype):
    y, (mul_BxC, add_BxC, coeff_vjp) = _forward(
        x, scale_C, bias_C, film_scale_BxC, film_shift_BxC, num_groups, epsilon, activation
    )
    return y.astype(out_dtype), (x, mul_BxC, add_BxC, coeff_vjp)


def _group_norm_bwd(num_groups, epsilon, activation, out_dtype, residuals, dy):
    x, mul_BxC, add_BxC, coeff_vjp = residuals
    middle = tuple(range(1, x.ndim - 1))
    x32 = x.astype(jnp.float32)
    z = _pre_activation(x, mul_BxC, add_BxC)
    dy32 = dy.astype(jnp.float32)
    g = jax.vjp(activation, z)[1](dy32)[0] if activation is not None else dy32
    dmul_BxC = jnp.sum(g * x32, axis=middle)
    dadd_BxC = jnp.sum(g, axis=middle)
    dsum_BxC, dsumsq_BxC, dscale, dbias, dfilm_scale, dfilm_shift = coeff_vjp((dmul_BxC, dadd_BxC))
    dx = g * _bcast(mul_BxC, x.ndim) + x32 * _bcast(2.0 * dsumsq_BxC, x.ndim) + _bcast(
        dsum_BxC, x.ndim
    )
    # A barrier: without it XLA fuses the dx of consecutive blocks (through the residual adds)
    # into single loops that recompute each other.
    dx = jax.lax.optimization_barrier(dx.astype(x.dtype))
    return dx, dscale, dbias, dfilm_scale, dfilm_shift


group_norm.defvjp(_group_norm_fwd, _group_norm_bwd)


class GroupNorm(nn.Module):
    """GroupNorm over the last (channel) axis, statistics over every axis but the first.

    Call as `norm(x, film=(scale_BxC, shift_BxC), activation=nn.silu)`: the output is
    `activation(gn(x) * (1 + scale) + shift)`; both extras are optional.
    """

    num_groups: int = 32
    epsilon: float = 1e-6
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        film: tuple[jax.Array, jax.Array] | None = None,
        activation: Activation = None,
    ) -> jax.Array:
        B, C = x.shape[0], x.shape[-1]
        if C % self.num_groups:
            raise ValueError(f"{C} channels do not split into {self.num_groups} groups")
        scale_C = self.param("scale", nn.initializers.ones, (C,), self.param_dtype)
        bias_C = self.param("bias", nn.initializers.zeros, (C,), self.param_dtype)
        if film is None:
            film = (jnp.zeros((B, C), jnp.float32), jnp.zeros((B, C), jnp.float32))
        film_scale, film_shift = (jnp.asarray(a, jnp.float32).reshape(B, C) for a in film)
        return group_norm(
            x,
            scale_C.astype(jnp.float32),
            bias_C.astype(jnp.float32),
            film_scale,
            film_shift,
            self.num_groups,
            self.epsilon,
            activation,
            jnp.dtype(self.dtype),
        )
