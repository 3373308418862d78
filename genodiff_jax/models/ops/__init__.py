"""The layers the denoisers are built from, in sets chosen by name (`ops=` on every model).

- "fast" (the default): layers shaped for XLA's CPU backend and for bf16 sampling weights: the
  fused GroupNorm with a hand-written backward (norm.py), the hashed dropout (dropout.py), the
  Dense that multiplies in its weights' dtype and reads bf16 [out, in] inference weights
  (dense.py), heads-first attention on CPU (attention.py), GELU in its erf form (activation.py),
  and per-model XLA options for inference (xla.py).
- "stock": flax's `GroupNorm` (with the same FiLM/activation call, stock.py), `nn.Dense`,
  `nn.Dropout`, `jax.nn.dot_product_attention` and `nn.gelu`; no custom gradients, no compiler
  options.

Both give the same parameter trees. A fork adds a set with
`LAYER_SETS.register(name, LayerSet(...))` and builds a model with `ops=name`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax

from genodiff_jax.models.ops import activation, attention, dense, dropout, norm, stock, xla
from genodiff_jax.models.ops.dense import WEIGHTS_DTYPES, inference_weights, weights_dtype
from genodiff_jax.models.ops.layer_set import LAYER_SETS, Layered, LayerSet

FAST = LAYER_SETS.register(
    "fast",
    LayerSet(
        GroupNorm=norm.GroupNorm,
        Dense=dense.Dense,
        Dropout=dropout.Dropout,
        attention=attention.attention,
        gelu=activation.gelu,
        compiler_options=xla.FAST_INFERENCE_OPTIONS,
    ),
)
STOCK = LAYER_SETS.register(
    "stock",
    LayerSet(
        GroupNorm=stock.GroupNorm,
        Dense=nn.Dense,
        Dropout=nn.Dropout,
        attention=jax.nn.dot_product_attention,
        gelu=functools.partial(nn.gelu, approximate=False),
    ),
)

__all__ = ["FAST", "LAYER_SETS", "STOCK", "WEIGHTS_DTYPES", "LayerSet", "Layered",
           "inference_weights", "weights_dtype"]
