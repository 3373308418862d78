"""Softmax attention with the heads moved ahead of the length, for XLA's CPU backend.

The "fast" layer set's attention: `attention(q, k, v, implementation=None)` takes and returns
[B, L, heads, H] like `jax.nn.dot_product_attention` (the "stock" set's). With no implementation
asked for, on the CPU backend it computes batched [L, H] x [H, L] products per head and a softmax
over the minor axis, a layout XLA's CPU emitters handle better than the fused function's reference
path; elsewhere, or when an implementation is named ("xla", "cudnn"), it is the fused function.

Measured figures: docs/benchmarks.md, "Where the CPU fast paths come from".
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def heads_first_attention(q_BxLxNxH, k_BxLxNxH, v_BxLxNxH):
    """Softmax(q k^T / sqrt(H)) v per head, computed as [B, N, L, H]; float32 softmax."""
    q, k, v = (a.transpose(0, 2, 1, 3) for a in (q_BxLxNxH, k_BxLxNxH, v_BxLxNxH))
    scores = jnp.einsum("bnqh,bnkh->bnqk", q, k) * (1.0 / math.sqrt(q.shape[-1]))
    probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
    return jnp.einsum("bnqk,bnkh->bnqh", probs, v).transpose(0, 2, 1, 3)


def attention(q_BxLxNxH, k_BxLxNxH, v_BxLxNxH, *, implementation: str | None = None):
    """`jax.nn.dot_product_attention(q, k, v, implementation=...)`, heads-first on the CPU backend
    when no implementation is asked for (the backend is read at trace time)."""
    if implementation is None and jax.default_backend() == "cpu":
        return heads_first_attention(q_BxLxNxH, k_BxLxNxH, v_BxLxNxH)
    return jax.nn.dot_product_attention(
        q_BxLxNxH, k_BxLxNxH, v_BxLxNxH, implementation=implementation
    )
