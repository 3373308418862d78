"""Shared pieces: sinusoidal time features, time MLP, class embeddings, multi-head attention.

Time arrives as `t_B` = t / T in [0, 1). Sinusoidal features are taken of `t * time_scale`
(1000 by default) so that their frequencies match those of integer DDPM steps. Labels arrive
as int32 `y_B` where the value `num_classes` is the null ("no label") class, so every class
table has `num_classes + 1` rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

TIME_SCALE = 1000.0


def sinusoidal_embedding(
    t_B: jax.Array, dim: int, max_period: float = 10_000.0, time_scale: float = TIME_SCALE
) -> jax.Array:
    """[cos | sin] features of `t_B * time_scale`, float32 [B, dim] (ADM's `timestep_embedding`)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args_BxH = (jnp.asarray(t_B, jnp.float32) * time_scale)[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.cos(args_BxH), jnp.sin(args_BxH)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of t (dim `freq_dim`) -> Dense-SiLU-Dense to `features`."""

    features: int
    freq_dim: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, t_B: jax.Array) -> jax.Array:
        h = sinusoidal_embedding(t_B, self.freq_dim).astype(self.dtype)
        h = nn.Dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype)(h)
        h = nn.silu(h)
        return nn.Dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype)(h)


class ClassEmbedding(nn.Module):
    """A learned row per class plus one for the null class (index `num_classes`)."""

    num_classes: int
    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, y_B: jax.Array) -> jax.Array:
        table = nn.Embed(
            self.num_classes + 1, self.features, dtype=self.dtype, param_dtype=self.param_dtype
        )
        return table(jnp.asarray(y_B, jnp.int32))


def one_hot_labels(y_B: jax.Array, num_classes: int, dtype: Dtype = jnp.float32) -> jax.Array:
    """One-hot [B, num_classes + 1]; the last column is the null class."""
    return jax.nn.one_hot(jnp.asarray(y_B, jnp.int32), num_classes + 1, dtype=dtype)


def multi_head_attention(
    q_BxLxC: jax.Array,
    k_BxLxC: jax.Array,
    v_BxLxC: jax.Array,
    num_heads: int,
    implementation: str | None = None,
    attend: Callable[..., jax.Array] = jax.nn.dot_product_attention,
) -> jax.Array:
    """Softmax attention over `num_heads` heads of C / num_heads channels.

    `attend(q, k, v, implementation=...)` on [B, L, heads, H] is a layer set's `attention`
    (models/ops); `implementation` ("xla", "cudnn", None to let it choose) is passed on to it.
    """
    B, L, C = q_BxLxC.shape
    if C % num_heads:
        raise ValueError(f"{C} channels do not split into {num_heads} heads")
    q, k, v = (a.reshape(B, L, num_heads, C // num_heads) for a in (q_BxLxC, k_BxLxC, v_BxLxC))
    return attend(q, k, v, implementation=implementation).reshape(B, L, C)
