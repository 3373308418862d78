"""Transformer over gene tokens (DESIGN 1.3; 186 M parameters at 26,624 x 8).

Each run of `genes_per_token` (16) consecutive genes becomes one token through a
position-specific linear map (every token position has its own 128 -> 384 weights);
[cls], time and class tokens are prepended, a learned position embedding added, then 12
pre-LN encoder layers (width 384, 6 heads, FFN 4x, GELU); a position-specific map turns each
gene token back into 16 x 8, plus the input. The two position-specific maps hold most of the
parameters, so the count grows with the number of genes.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype

from genodiff_jax.models.embeddings import ClassEmbedding, TimestepEmbedding, multi_head_attention
from genodiff_jax.models.ops import Layered
from genodiff_jax.models.ops.dense import InferenceForm
from genodiff_jax.models.registry import register_model

NUM_EXTRA_TOKENS = 3  # [cls], time, class


class PositionwiseLinear(InferenceForm, nn.Module):
    """A separate affine map per token position: [B, N, D_in] -> [B, N, features]. With bf16
    inference weights (kernel [N, features, D_in]) the products are bf16 with float32
    accumulation, like the fast `Dense`."""

    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_BxNxD: jax.Array) -> jax.Array:
        _, N, D = x_BxNxD.shape
        kernel_NxFxD = self._inference_kernel((N, D, self.features))
        if kernel_NxFxD is not None:
            bias_NxF = self.get_variable("params", "bias")
            y = jnp.einsum("bnd,nfd->bnf", x_BxNxD.astype(kernel_NxFxD.dtype), kernel_NxFxD,
                           preferred_element_type=jnp.float32)
            return (y + bias_NxF.astype(jnp.float32)).astype(self.dtype)
        kernel_NxDxF = self.param(
            "kernel",
            nn.initializers.variance_scaling(
                1.0, "fan_in", "truncated_normal", in_axis=1, out_axis=2
            ),
            (N, D, self.features),
            self.param_dtype,
        )
        bias_NxF = self.param("bias", nn.initializers.zeros, (N, self.features), self.param_dtype)
        x, kernel, bias = nn.dtypes.promote_dtype(x_BxNxD, kernel_NxDxF, bias_NxF, dtype=self.dtype)
        return jnp.einsum("bnd,ndf->bnf", x, kernel) + bias


class EncoderLayer(Layered):
    """Pre-LN transformer encoder layer with fused attention and a GELU FFN."""

    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    attention_impl: str | None = None

    @nn.compact
    def __call__(self, h_BxLxC: jax.Array, train: bool) -> jax.Array:
        layers = self.layers
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        C = h_BxLxC.shape[-1]
        drop = layers.Dropout(self.dropout, deterministic=not train)

        a = nn.LayerNorm(name="attn_norm", **kw)(h_BxLxC)
        q, k, v = jnp.split(layers.Dense(3 * C, name="qkv", **kw)(a), 3, axis=-1)
        a = multi_head_attention(
            q, k, v, self.num_heads, self.attention_impl, attend=layers.attention
        )
        h_BxLxC = h_BxLxC + drop(layers.Dense(C, name="attn_out", **kw)(a))

        m = nn.LayerNorm(name="mlp_norm", **kw)(h_BxLxC)
        m = layers.gelu(layers.Dense(self.mlp_ratio * C, name="mlp_in", **kw)(m))
        m = layers.Dense(C, name="mlp_out", **kw)(drop(m))
        return h_BxLxC + drop(m)


@register_model("transformer")
class Transformer(Layered):
    """Gene-token transformer denoiser: (x [B,G,K], t [B], y [B]) -> [B,G,K], plus the input."""

    TEST_SIZES: ClassVar[dict] = dict(width=32, depth=2, num_heads=4, time_freq_dim=16, dropout=0.1)

    num_classes: int
    genes_per_token: int = 16
    width: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: int = 4
    dropout: float = 0.0
    time_freq_dim: int = 128
    attention_impl: str | None = None  # jax.nn.dot_product_attention: None, "xla", "cudnn"

    @nn.compact
    def __call__(
        self, x_BxGxK: jax.Array, t_B: jax.Array, y_B: jax.Array, train: bool = False
    ) -> jax.Array:
        B, G, K = x_BxGxK.shape
        layers = self.layers
        P = self.genes_per_token
        if G % P:
            raise ValueError(f"transformer: the gene axis ({G}) must be divisible by {P}")
        N = G // P
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

        tok_BxNxC = PositionwiseLinear(self.width, name="tokenize", **kw)(
            x_BxGxK.reshape(B, N, P * K).astype(self.dtype)
        )
        cls_1x1xC = self.param(
            "cls_token", nn.initializers.normal(0.02), (1, 1, self.width), self.param_dtype
        )
        time_Bx1xC = TimestepEmbedding(self.width, self.time_freq_dim, name="time_embed", **kw)(
            t_B
        )[:, None]
        class_Bx1xC = ClassEmbedding(self.num_classes, self.width, name="label_emb", **kw)(y_B)[
            :, None
        ]
        h = jnp.concatenate(
            [
                jnp.broadcast_to(cls_1x1xC.astype(self.dtype), (B, 1, self.width)),
                time_Bx1xC.astype(self.dtype),
                class_Bx1xC.astype(self.dtype),
                tok_BxNxC,
            ],
            axis=1,
        )
        pos_LxC = self.param(
            "pos_embed",
            nn.initializers.normal(0.02),
            (N + NUM_EXTRA_TOKENS, self.width),
            self.param_dtype,
        )
        h = h + pos_LxC.astype(self.dtype)[None]
        h = layers.Dropout(self.dropout, deterministic=not train)(h)

        for i in range(self.depth):
            h = EncoderLayer(
                self.num_heads,
                self.mlp_ratio,
                self.dropout,
                self.attention_impl,
                ops=self.ops,
                name=f"layer_{i}",
                **kw,
            )(h, train)

        h = nn.LayerNorm(name="out_norm", **kw)(h[:, NUM_EXTRA_TOKENS:])
        out_BxNxD = PositionwiseLinear(P * K, name="detokenize", **kw)(h)
        return x_BxGxK + out_BxNxD.reshape(B, G, K).astype(x_BxGxK.dtype)
