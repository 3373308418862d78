"""Denoisers by name: `MODELS`, `register_model`, `build_model`, `count_params`.

Every registered model is a linen module with fields `num_classes`, `dtype` and
`param_dtype` (plus its own sizes), called as
`model.apply({"params": p}, x_BxGxK, t_B, y_B, train=..., rngs={"dropout": key})` and
returning a prediction shaped like `x_BxGxK`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MODELS: dict[str, type[nn.Module]] = {}


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
