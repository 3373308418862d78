"""Denoisers by name: `MODELS`, `register_model`, `build_model`, `count_params`.

Every registered model is a linen module with fields `num_classes`, `dtype`, `param_dtype` and
`ops` (the layer set, models/ops/, "fast" by default) plus its own sizes, and a ClassVar
`TEST_SIZES` (the field values of a tiny version for tests). It is called as
`model.apply({"params": p}, x, t_B, y_B, train=..., rngs={"dropout": key})`. A feature model
(the default) takes gene-PCA features x_BxGxK and returns a prediction shaped like them; a model
whose ClassVar `REPRESENTATION` is "tokens" takes a dict of SNP tokens (models/snp_unet.py) and
returns logits.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.models.ops import LAYER_SETS
from genodiff_jax.registry import Registry

MODELS: Registry[type[nn.Module]] = Registry("model")


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a denoiser module under `name` (a name taken is a ValueError)."""
    return MODELS.register(name)


def build_model(name: str, **kwargs) -> nn.Module:
    """Instantiate the model registered as `name` with its dataclass fields `kwargs`."""
    return MODELS[name](**kwargs)


def representation(name: str) -> str:
    """What the model registered as `name` takes: "features" (the default) or "tokens"."""
    return getattr(MODELS[name], "REPRESENTATION", "features")


def inference_compiler_options(model: nn.Module) -> dict[str, str] | None:
    """The XLA options `model`'s inference (sampling) should compile with on the current backend.

    They belong to the model's layer set (`model.ops`), per registered model name; None for a
    module that is not a registered denoiser, for a set or backend without options, and for
    options this XLA does not know (dropped with a warning rather than failing the compile).
    """
    name = next((n for n, cls in MODELS.items() if cls is type(model)), None)
    if name is None:
        return None
    return LAYER_SETS[model.ops].inference_compiler_options(name)


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
