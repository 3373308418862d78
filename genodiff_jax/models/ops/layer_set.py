"""A layer set: the GroupNorm, Dense, Dropout, attention and GELU a denoiser is built from, by name.

A denoiser has a field `ops` (a name in `LAYER_SETS`) and asks `LAYER_SETS[self.ops]` for these
layers, so the model file states the architecture and the layer set how its pieces are computed.
Every set must give the same parameters (names, shapes, initialisers) so that checkpoints move
between sets; values may differ by rounding, and dropout masks by construction.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genodiff_jax.models.ops import xla
from genodiff_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class LayerSet:
    """The layers behind one `ops` name.

    GroupNorm: `GroupNorm(num_groups, dtype=, param_dtype=)(x, film=None, activation=None)` with
        params `scale`, `bias` [C]; statistics over every axis but the first.
    Dense: `flax.linen.Dense`'s fields and params.
    Dropout: `flax.linen.Dropout(rate, deterministic=)`, drawing from the "dropout" RNG stream.
    attention: `jax.nn.dot_product_attention`'s `(q, k, v, implementation=None)` on
        [B, L, heads, H].
    gelu: the exact (erf) GELU, `x -> 0.5 x (1 + erf(x / sqrt 2))`; flax's by default.
    compiler_options: model name -> backend -> XLA options for that model's inference programs.
    """

    GroupNorm: type[nn.Module]
    Dense: type[nn.Module]
    Dropout: type[nn.Module]
    attention: Callable[..., jax.Array]
    gelu: Callable[[jax.Array], jax.Array] = functools.partial(nn.gelu, approximate=False)
    compiler_options: Mapping[str, Mapping[str, Mapping[str, str]]] = dataclasses.field(
        default_factory=dict
    )

    def inference_compiler_options(
        self, model_name: str, backend: str | None = None
    ) -> dict[str, str] | None:
        """The XLA options `model_name`'s inference compiles with on `backend` (default: the
        current one); None for none, or if this XLA does not know them (with a warning)."""
        by_backend = self.compiler_options.get(model_name, {})
        return xla.accepted(by_backend.get(backend or jax.default_backend()))


LAYER_SETS: Registry[LayerSet] = Registry("layer set")


class Layered(nn.Module):
    """A module built from a layer set: `dtype` (compute), `param_dtype` and `ops` (the layer set's
    name), keyword-only so that each model's own fields come first; `self.layers` is the set."""

    dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)
    param_dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)
    ops: str = dataclasses.field(default="fast", kw_only=True)

    @property
    def layers(self) -> LayerSet:
        return LAYER_SETS[self.ops]
