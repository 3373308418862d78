"""MLP U-Net on the flattened features (DESIGN 1.3; 444 M parameters at 26,624 x 8).

The input [B, G, K] is flattened to D = G * K. Each block (down: 1024 then 512; up: the
mirror) is Linear-SiLU (kept as `a`), Linear-SiLU (the U-Net skip on the way down),
GroupNorm, Linear-SiLU, plus `a`. Time enters as Linear(t) added and the class as
Linear(one-hot) multiplied, once per block, right after `a`. The two D x 1024 matrices (in
and out) hold almost all parameters.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from genodiff_jax.models.embeddings import one_hot_labels
from genodiff_jax.models.ops import Layered
from genodiff_jax.models.registry import register_model


class MLPBlock(Layered):
    """Linear-SiLU (a) -> conditioning -> Linear-SiLU (skip) -> GN -> Linear-SiLU, + a."""

    features: int
    num_groups: int = 32
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, h_BxF: jax.Array, t_Bx1: jax.Array, y1h_BxC: jax.Array, train: bool
    ) -> tuple[jax.Array, jax.Array]:
        """Returns (block output, skip), both [B, features]."""
        layers = self.layers
        dense = lambda name, **kw: layers.Dense(  # noqa: E731
            self.features, dtype=self.dtype, param_dtype=self.param_dtype, name=name, **kw
        )
        a = nn.silu(dense("in")(h_BxF))
        # The class multiplies: its table starts at 1 (bias) so an untrained label is neutral.
        # Time stays float32: bf16 cannot tell apart adjacent steps near t = 1 (T = 500). So it
        # is flax's Dense in every layer set: it multiplies in float32 even from bf16 weights.
        time_emb = nn.Dense(self.features, param_dtype=self.param_dtype, name="time")(t_Bx1)
        a = a * dense("class", bias_init=nn.initializers.ones)(y1h_BxC) + time_emb.astype(a.dtype)
        skip = nn.silu(dense("hidden")(a))
        h = layers.GroupNorm(
            self.num_groups, dtype=self.dtype, param_dtype=self.param_dtype, name="norm"
        )(skip)
        h = layers.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.silu(dense("out")(h)) + a
        return h, skip


@register_model("mlp_unet")
class MLPUNet(Layered):
    """MLP U-Net denoiser: (x [B,G,K], t [B], y [B]) -> [B,G,K], plus the input."""

    TEST_SIZES: ClassVar[dict] = dict(widths=(64, 32), bottleneck=32, num_groups=8, dropout=0.1)

    num_classes: int
    widths: tuple[int, ...] = (1024, 512)
    bottleneck: int = 256
    num_groups: int = 32
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, x_BxGxK: jax.Array, t_B: jax.Array, y_B: jax.Array, train: bool = False
    ) -> jax.Array:
        B, G, K = x_BxGxK.shape
        layers = self.layers
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        block_kw = dict(num_groups=self.num_groups, dropout=self.dropout, ops=self.ops, **kw)
        t_Bx1 = jnp.asarray(t_B, jnp.float32).reshape(B, 1)
        y1h_BxC = one_hot_labels(y_B, self.num_classes, self.dtype)

        h = x_BxGxK.reshape(B, G * K).astype(self.dtype)
        skips = []
        for i, width in enumerate(self.widths):
            h, skip = MLPBlock(width, name=f"down_{i}", **block_kw)(h, t_Bx1, y1h_BxC, train)
            skips.append(skip)

        h = layers.Dense(self.bottleneck, name="mid_in", **kw)(h)
        h = layers.GroupNorm(self.num_groups, name="mid_norm", **kw)(h, activation=nn.silu)
        h = nn.silu(layers.Dense(self.bottleneck, name="mid_out", **kw)(h))

        for i, width in reversed(list(enumerate(self.widths))):
            h = jnp.concatenate([h, skips.pop()], axis=-1)
            h, _ = MLPBlock(width, name=f"up_{i}", **block_kw)(h, t_Bx1, y1h_BxC, train)

        h = layers.GroupNorm(self.num_groups, name="out_norm", **kw)(h, activation=nn.silu)
        out_BxD = layers.Dense(G * K, name="out", **kw)(h)
        # The residual in the input's dtype, so bf16 compute does not round x itself.
        return x_BxGxK + out_BxD.reshape(B, G, K).astype(x_BxGxK.dtype)
