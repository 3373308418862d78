"""The "stock" layer set's GroupNorm: flax's own, called like the fused one in ops/norm.py.

`norm(x, film=(scale_BxC, shift_BxC), activation=nn.silu)` is
`activation(nn.GroupNorm(x) * (1 + scale) + shift)`, written out as ADM writes it. A subclass of
`flax.linen.GroupNorm`, so its parameters are flax's (`scale`, `bias` of shape [C]) and a
checkpoint trained with either layer set loads into the other.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax


class GroupNorm(nn.GroupNorm):
    """`flax.linen.GroupNorm` followed by an optional FiLM scale-shift and activation."""

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        film: tuple[jax.Array, jax.Array] | None = None,
        activation: Callable[[jax.Array], jax.Array] | None = None,
    ) -> jax.Array:
        h = super().__call__(x)
        if film is not None:
            # [B, C] -> [B, 1, ..., 1, C] against h
            shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
            scale, shift = (a.reshape(shape) for a in film)
            h = h * (1 + scale) + shift
        return activation(h) if activation is not None else h
