"""GELU written as 0.5 x (1 + erf(x / sqrt 2)): the "fast" layer set's, and PyTorch's, form.

`jax.nn.gelu(approximate=False)` computes x erfc(-x / sqrt 2) / 2, and XLA's CPU backend expands
erfc into a longer polynomial than erf: followed by the transformer's [B, L, 1536] -> 384 product
the erfc form took 24 ms a layer against 13 ms for this one (2 cores, Sapphire Rapids). The two
agree within 2e-6 everywhere (the erfc form is only more accurate, relatively, far below zero,
where both are ~0).
"""

from __future__ import annotations

import math

import jax


def gelu(x: jax.Array) -> jax.Array:
    """The exact (erf) GELU, 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))
