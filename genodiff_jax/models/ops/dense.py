"""A Dense layer whose matmul runs in the dtype its weights arrive in, accumulating in float32.

The "fast" layer set's Dense. Parameters and initialisation are those of `flax.linen.Dense`
("kernel" [in, out], "bias" [out], lecun-normal and zeros), so checkpoints and seeds are
interchangeable. The difference: when the kernel is passed in a narrower dtype than the compute
dtype (bfloat16 weights for sampling, see `cast_weights`), the product is taken in that dtype with
float32 accumulation instead of casting the kernel back up on every call. This is what makes the
MLP U-Net's two D x 1024 matrices (almost all of its weights) cheap to sample with: CPUs with
AVX512-BF16 and GPUs multiply bf16 x bf16 -> f32 natively, and the weights are half the bytes.

Measured figures: docs/benchmarks.md, "Where the CPU fast paths come from".
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype, Initializer


class Dense(nn.Module):
    """y = x @ kernel + bias over the last axis of x, float32 accumulation, output in `dtype`."""

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features),
                            self.param_dtype)
        operand = jnp.dtype(self.dtype)
        if jnp.finfo(kernel.dtype).bits < jnp.finfo(operand).bits:
            operand = kernel.dtype  # narrower weights given: multiply in their dtype
        y = jax.lax.dot_general(
            x.astype(operand), kernel.astype(operand), (((x.ndim - 1,), (0,)), ((), ())),
            preferred_element_type=jnp.float32,
        )
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            y = y + bias.astype(jnp.float32)
        return y.astype(self.dtype)


def cast_weights(params: Any, dtype: Dtype | None) -> Any:
    """Every floating parameter with >= 2 dimensions (kernels, tables) cast to `dtype`.

    For sampling only (the optimiser keeps float32 master weights). None or float32: unchanged.
    Layers written for it (`Dense` above) then multiply in `dtype`; the others cast back up.
    """
    if dtype is None or jnp.dtype(dtype) == jnp.float32:
        return params

    def cast(a):
        if jnp.issubdtype(a.dtype, jnp.floating) and a.ndim >= 2:
            return a.astype(dtype)
        return a

    return jax.tree.map(cast, params)
