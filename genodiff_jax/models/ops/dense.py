"""A Dense layer whose matmul runs in the dtype its weights arrive in, accumulating in float32,
and the inference form of its weights (`InferenceForm`, `inference_weights`): the fast path of
sampling on CPUs.

The "fast" layer set's Dense. Parameters and initialisation are those of `flax.linen.Dense`
("kernel" [in, out], "bias" [out], lecun-normal and zeros), so checkpoints and seeds are
interchangeable. For sampling, `inference_weights` rounds every weight matrix to bf16 and stores
each of these layers' kernels transposed, [out, in]: a kernel that arrives narrower than
`param_dtype` is in that form, and the product contracts the minor axis of both operands, bf16 x
bf16 with float32 accumulation. CPUs with AVX512-BF16 or AMX (and GPUs) multiply bf16 natively,
the weights are half the bytes, and XLA's CPU library (YNNPACK) packs a [out, in] bf16 kernel
without a transposed copy on every call. `weights_dtype("auto")` picks bf16 where the CPU has
those instructions.

Measured figures: docs/benchmarks.md, "Where the CPU fast paths come from".
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.typing import Dtype, Initializer

# --weights-dtype values; "auto": bfloat16 where `bf16_cpu()` says so, else float32.
WEIGHTS_DTYPES = ("auto", "float32", "bfloat16")
# /proc/cpuinfo flags of x86 CPUs that multiply bf16 in hardware (AVX512-BF16, AMX tiles).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class InferenceForm:
    """A module whose kernel has an inference form: the trained kernel with its last two axes
    swapped ([..., out, in]) and narrower than `param_dtype`, made by `inference_weights`. Such a
    module contracts the minor axis of both operands, with float32 accumulation."""

    def _inference_kernel(self, trained_shape: tuple[int, ...]) -> jax.Array | None:
        """The kernel in its inference form, or None when the parameters are the trained ones
        (`trained_shape`, param_dtype) or are being created."""
        if self.is_initializing() or not self.has_variable("params", "kernel"):
            return None
        kernel = self.get_variable("params", "kernel")
        if jnp.finfo(kernel.dtype).bits >= jnp.finfo(self.param_dtype).bits:
            return None
        want = (*trained_shape[:-2], trained_shape[-1], trained_shape[-2])
        if kernel.shape != want:
            raise ValueError(f"{type(self).__name__} {'/'.join(self.path)}: a {kernel.dtype} "
                             f"kernel is the inference form [..., out, in] = {want}, got "
                             f"{kernel.shape}; make it with models.inference_weights")
        return kernel


class Dense(InferenceForm, nn.Module):
    """y = x @ kernel + bias over the last axis of x, float32 accumulation, output in `dtype`."""

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        contract = x.ndim - 1
        kernel = self._inference_kernel((x.shape[-1], self.features))
        if kernel is None:  # the trained form, [in, out]
            kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features),
                                self.param_dtype).astype(self.dtype)
            dims = (((contract,), (0,)), ((), ()))
        else:  # the inference form, [out, in], in its own (narrower) dtype
            dims = (((contract,), (1,)), ((), ()))
        y = jax.lax.dot_general(x.astype(kernel.dtype), kernel, dims,
                                preferred_element_type=jnp.float32)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            y = y + bias.astype(jnp.float32)
        return y.astype(self.dtype)


def _inference_form_paths(model: nn.Module, params: Any, row: Any) -> frozenset[tuple[str, ...]]:
    """The params paths of every `InferenceForm` module (such as `Dense` above) that `model`
    calls, found by tracing one call on abstract inputs of one example's spec `row` (a
    ShapeDtypeStruct, or a dict of them)."""
    found = set()

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, InferenceForm) and context.method_name == "__call__":
            found.add(tuple(context.module.path))
        return next_fun(*args, **kwargs)

    x = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1, *s.shape), s.dtype), row)
    t = jax.ShapeDtypeStruct((1,), jnp.float32)
    y = jax.ShapeDtypeStruct((1,), jnp.int32)
    with nn.intercept_methods(record):
        jax.eval_shape(lambda p, x, t, y: model.apply({"params": p}, x, t, y, train=False),
                       params, x, t, y)
    return frozenset(found)


def inference_weights(model: nn.Module, params: Any, row: Any, dtype: Dtype | None) -> Any:
    """The parameters `model` samples with when its weight matrices are in `dtype`.

    None or float32: `params` unchanged. A narrower dtype (bfloat16): every floating parameter
    with >= 2 dimensions (kernels, tables) rounded to it, and the kernel of each `InferenceForm`
    module (`Dense`, the transformer's position-wise maps) with its last two axes swapped, [...,
    out, in] (its inference form; found by tracing the model on `row`, one example's spec). For
    sampling only: the optimiser keeps float32 master weights, and other layers cast their
    weights back up.
    """
    if dtype is None or jnp.dtype(dtype) == jnp.float32:
        return params
    swapped = _inference_form_paths(model, params, row)

    def convert(path, a):
        if not (jnp.issubdtype(a.dtype, jnp.floating) and a.ndim >= 2):
            return a
        a = a.astype(dtype)
        names = tuple(str(getattr(k, "key", k)) for k in path)
        return jnp.swapaxes(a, -1, -2) if names[-1] == "kernel" and names[:-1] in swapped else a

    return jax.tree_util.tree_map_with_path(convert, params)


@functools.cache
def bf16_cpu() -> bool:
    """Whether this machine's CPU multiplies bf16 in hardware (`BF16_CPU_FLAGS` in
    /proc/cpuinfo); False where that file is missing (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return not BF16_CPU_FLAGS.isdisjoint(flags)


def weights_dtype(name: str | None) -> str:
    """A --weights-dtype value as the dtype sampling uses: "auto" (or None) is bfloat16 on a CPU
    backend whose CPU has `BF16_CPU_FLAGS`, float32 elsewhere (accelerators: not measured yet)."""
    if name in (None, "auto"):
        return "bfloat16" if jax.default_backend() == "cpu" and bf16_cpu() else "float32"
    if name not in WEIGHTS_DTYPES:
        raise ValueError(f"weights dtype must be one of {', '.join(WEIGHTS_DTYPES)}, got {name!r}")
    return name
