"""MLP + CNN (DESIGN 1.3; the paper's best model, 463 M parameters at 26,624 x 8).

An MLP U-Net and a 1-D CNN U-Net see the same input; the output is
(1 - w) * mlp + w * cnn with w = sigmoid(f(t)), f = Linear(1 -> 128)-SiLU-Linear(128 -> 1).
Both outputs already include the input, so the mix is a convex combination of two denoisers.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from genodiff_jax.models.cnn_unet import CNNUNet
from genodiff_jax.models.mlp_unet import MLPUNet
from genodiff_jax.models.ops import Layered
from genodiff_jax.models.registry import register_model


@register_model("mlp_cnn")
class MLPCNN(Layered):
    """Time-dependent convex mix of an MLP U-Net ("mlp") and a CNN U-Net ("cnn")."""

    TEST_SIZES: ClassVar[dict] = dict(
        mlp_widths=(64, 32),
        mlp_bottleneck=32,
        mlp_dropout=0.1,
        base_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_ds=(2,),
        num_heads=2,
        head_channels=8,
        cnn_dropout=0.1,
        num_groups=8,
    )

    num_classes: int
    # MLP U-Net
    mlp_widths: tuple[int, ...] = (1024, 512)
    mlp_bottleneck: int = 256
    mlp_dropout: float = 0.0
    # CNN U-Net
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 1, 1, 1, 2, 2, 3, 4)
    num_res_blocks: int = 3
    attention_ds: tuple[int, ...] = (32, 64)
    num_heads: int = 4
    head_channels: int = 64
    cnn_dropout: float = 0.1
    attention_impl: str | None = None
    # both, and the mix
    num_groups: int = 32
    mix_hidden: int = 128

    def setup(self) -> None:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, ops=self.ops)
        self.mlp = MLPUNet(
            self.num_classes,
            widths=self.mlp_widths,
            bottleneck=self.mlp_bottleneck,
            num_groups=self.num_groups,
            dropout=self.mlp_dropout,
            **kw,
        )
        self.cnn = CNNUNet(
            self.num_classes,
            base_channels=self.base_channels,
            channel_mult=self.channel_mult,
            num_res_blocks=self.num_res_blocks,
            attention_ds=self.attention_ds,
            num_heads=self.num_heads,
            head_channels=self.head_channels,
            num_groups=self.num_groups,
            dropout=self.cnn_dropout,
            attention_impl=self.attention_impl,
            **kw,
        )
        # The mix weight stays float32: it is tiny and multiplies whole outputs.
        self.mix_hidden_layer = nn.Dense(self.mix_hidden, param_dtype=self.param_dtype)
        self.mix_out = nn.Dense(1, param_dtype=self.param_dtype)

    def mix_weight(self, t_B: jax.Array) -> jax.Array:
        """w(t) = sigmoid(f(t)) in (0, 1), float32 [B]."""
        t_Bx1 = jnp.asarray(t_B, jnp.float32)[:, None]
        return jax.nn.sigmoid(self.mix_out(nn.silu(self.mix_hidden_layer(t_Bx1))))[:, 0]

    def __call__(
        self, x_BxGxK: jax.Array, t_B: jax.Array, y_B: jax.Array, train: bool = False
    ) -> jax.Array:
        w_Bx1x1 = self.mix_weight(t_B)[:, None, None].astype(x_BxGxK.dtype)
        out_mlp = self.mlp(x_BxGxK, t_B, y_B, train)
        out_cnn = self.cnn(x_BxGxK, t_B, y_B, train)
        return (1 - w_Bx1x1) * out_mlp + w_Bx1x1 * out_cnn
