"""One example of each family as the benchmark feeds it: the family entry builds it
(`families.Family.bench_example`, with the shape flags of its `bench_flags`), so a new family
brings its benchmark example with it.

An `Example` (`families.Example`) is what the timers need to know of a family: one example's spec
(`row`) and mask, random training data as the loop holds it, a random denoiser input (x_t), the
sampling start, the shape fields of the JSON entry and the per-example units its rates are also
given in (tokens: H x L). The timers and the batch search see only the Example.

- gene-PCA features: float32 [G, K] from --genes/--components (default `FEATURE_SHAPE`).
- masked tokens: {"tokens": int8 [H, L], "pos", "af", "class_af", "pooled_af": float32 [L]}, L
  from --window (default: the config's diffusion.window) rounded up to the model's length
  multiple, H from diffusion.tokens.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from genodiff_jax.errors import InputError
from genodiff_jax.families import FAMILIES, Example, family_of
from genodiff_jax.families.gene_pca import FEATURE_SHAPE
from genodiff_jax.train.state import abstract_params

__all__ = ["FEATURE_SHAPE", "Example", "build_example", "check_shape_flags", "param_count"]


def check_shape_flags(specs, s) -> None:
    """InputError for a shape flag that no model of the run takes (--genes with only token
    models, --window with only feature models)."""
    kinds = sorted({spec.process.representation for spec in specs})
    flags = {flag: field for spec in specs
             for flag, field in getattr(family_of(spec.process), "bench_flags", {}).items()}
    every = {flag: field for family in FAMILIES.values()
             for flag, field in getattr(family, "bench_flags", {}).items()}
    for flag, field in every.items():
        if getattr(s, field, None) is not None and flag not in flags:
            names = ", ".join(dict.fromkeys(spec.name for spec in specs))
            raise InputError(None, f"{flag} does not apply to {names} ({' and '.join(kinds)}; "
                             f"shape flags: {', '.join(flags)})")


def build_example(spec, model: nn.Module, s) -> Example:
    """The spec's Example, built by its process's family from the settings' shape flags."""
    family = family_of(spec.process)
    if not hasattr(family, "bench_example"):
        raise InputError(None, f"{spec.name}: its family ({spec.process.representation}) has no "
                               "benchmark example")
    shape = {field: getattr(s, field, None) for field in family.bench_flags.values()}
    return family.bench_example(spec.process, model, shape)


def param_count(model: nn.Module, example: Example) -> int:
    """Parameters of `model` for `example`'s row (eval_shape, nothing allocated)."""
    leaves = jax.tree.leaves(abstract_params(model, example.row))
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in leaves))
