"""Denoisers by name: `MODELS`, `register_model`, `build_model`, `count_params`.

Every registered model is a linen module with fields `num_classes`, `dtype` and
`param_dtype` (plus its own sizes), called as
`model.apply({"params": p}, x_BxGxK, t_B, y_B, train=..., rngs={"dropout": key})` and
returning a prediction shaped like `x_BxGxK`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MODELS: dict[str, type[nn.Module]] = {}

log = logging.getLogger(__name__)

# XLA's CPU backend hands dots, elementwise graphs and reductions to YNNPACK by default. For the
# CNN denoisers' forward pass, leaving reductions to XLA's own emitters avoids materialising
# full-size tensors of constants for YNNPACK's reduction fusions (the 2x2 average pools, the
# GroupNorm sums): the CNN U-Net call at 2048 x 8, batch 32 drops from 0.63 to 0.48 s. Not for
# training (its backward got slower) and not for the MLP or transformer (slower too).
CPU_DOT_AND_ELTWISE_ONLY = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE",
}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a denoiser module under `name`."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = cls
        return cls

    return decorator


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate the model registered as `name` with its dataclass fields `kwargs`."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**kwargs)


@functools.cache
def _xla_accepts(options: tuple[tuple[str, str], ...]) -> bool:
    """Whether this XLA knows the options (their names and values change between releases)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(1.0).compile()
        return True
    except Exception as e:  # noqa: BLE001 - an unknown option is not an error, just no tuning
        log.warning("XLA ignores compiler options %s: %s", dict(options), e)
        return False


def inference_compiler_options(model: nn.Module) -> dict[str, str] | None:
    """The XLA options `model`'s inference (sampling) compiles with on the current backend.

    A model class may declare `INFERENCE_COMPILER_OPTIONS = {backend: {option: value}}`; options
    this XLA does not know are dropped (with a warning) rather than failing the compile.
    """
    table = getattr(type(model), "INFERENCE_COMPILER_OPTIONS", {})
    options = table.get(jax.default_backend())
    if not options or not _xla_accepts(tuple(sorted(options.items()))):
        return None
    return dict(options)


def abstract_params(model: nn.Module, G: int, K: int, batch: int = 1):
    """The params pytree of `model` at feature shape [G, K] as ShapeDtypeStructs (no allocation)."""
    x = jax.ShapeDtypeStruct((batch, G, K), jnp.float32)
    t = jax.ShapeDtypeStruct((batch,), jnp.float32)
    y = jax.ShapeDtypeStruct((batch,), jnp.int32)

    def init(x, t, y):
        key = jax.random.key(0)
        return model.init({"params": key, "dropout": key}, x, t, y, train=False)["params"]

    return jax.eval_shape(init, x, t, y)


def count_params(model: nn.Module, G: int, K: int) -> int:
    """Number of parameters of `model` at feature shape [G, K], via `jax.eval_shape`."""
    leaves = jax.tree_util.tree_leaves(abstract_params(model, G, K))
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in leaves))
