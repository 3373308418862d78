"""Dropout whose mask is a counter hash of (seed, element index), computed where it is used.

The "fast" layer set's Dropout. `flax.linen.Dropout` draws one threefry word per element, and XLA
materialises those words and reads them again in the backward pass. Here one threefry word per
call (from the same "dropout" RNG stream, so seeds, `fold_in` and sharding behave as before) keys
murmur3's 32-bit finaliser over each element's index: about ten integer operations that XLA fuses
into the multiply, in the forward and again in the backward pass, so no mask is stored.

Same contract as `nn.Dropout`: keep each element with probability 1 - rate (to within 2^-32),
scale kept values by 1 / (1 - rate), identity when `deterministic`. The index is the element's
position in the global array, so the mask does not depend on how the batch is sharded. The masks
differ from `nn.Dropout`'s (the "stock" set's) for the same key.

Measured figures: docs/benchmarks.md, "Where the CPU fast paths come from".
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_GOLDEN = 0x9E3779B9  # 2^32 / phi: spreads consecutive indices before mixing


def fmix32(h: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def keep_mask(seed: jax.Array, shape: tuple[int, ...], rate: float) -> jax.Array:
    """Boolean mask of `shape`, True with probability 1 - rate, a pure function of (seed, index).

    Rows (the leading axis) get their own key, fmix32(seed + row * golden), so the index within a
    row only has to fit 32 bits.
    """
    inner = math.prod(shape[1:])
    if inner >= 2**32:
        raise ValueError(f"dropout: {shape} has more than 2^32 elements in a row")
    rows = lax.broadcasted_iota(jnp.uint32, shape, 0) if shape else jnp.uint32(0)
    within = lax.iota(jnp.uint32, inner).reshape((1, *shape[1:])) if shape else jnp.uint32(0)
    row_key = fmix32(seed.astype(jnp.uint32) + rows * jnp.uint32(_GOLDEN))
    h = fmix32(row_key ^ (within * jnp.uint32(_GOLDEN)))
    return h >= jnp.uint32(round(rate * 2**32))


class Dropout(nn.Module):
    """`nn.Dropout(rate)` with a hashed mask (see the module docstring)."""

    rate: float
    deterministic: bool = False
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or self.rate == 0.0:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        seed = jax.random.bits(self.make_rng(self.rng_collection), (), jnp.uint32)
        keep = keep_mask(seed, x.shape, self.rate)
        return jnp.where(keep, x / jnp.asarray(1.0 - self.rate, x.dtype), jnp.zeros_like(x))
