"""One example of each representation as the benchmark feeds it, found by the process's
`representation` in `EXAMPLES`.

An `Example` is what the timers need to know of a family: one example's spec (`row`) and mask,
random training data as the loop holds it, a random denoiser input (x_t), the sampling start,
the shape fields of the JSON entry and the per-example units its rates are also given in (tokens:
H x L). The timers and the batch search see only the Example; a new family registers one builder
and the shape flags it takes.

- `features` (Gaussian family): float32 [G, K] from --genes/--components, every slot real.
- `tokens` (masked family): {"tokens": int8 [H, L], "pos", "af", "class_af", "pooled_af": float32
  [L]}, L from --window
  (default: the config's diffusion.window) rounded up to the model's length multiple, H from
  diffusion.tokens; sampling starts all MASK with the pos/af context (the `start` of `generate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from genodiff_jax.errors import InputError
from genodiff_jax.registry import Registry
from genodiff_jax.train.state import abstract_params

FEATURE_SHAPE = (2048, 8)  # (genes, components) when --genes/--components are not given
BP_PER_SNP = 200  # mean spacing of the random SNP positions (the cost does not depend on it)


@dataclasses.dataclass(frozen=True)
class Example:
    """One example of a family: spec, mask, JSON fields, units, and random host arrays."""

    row: Any  # a ShapeDtypeStruct, or a dict of them
    mask: np.ndarray | None  # real slots of an example (None: all)
    label: str  # "features [G, K]", for messages
    fields: dict  # the entry's shape fields
    units: dict[str, int]  # per-example counts that rates are also given in: {"tokens": H L}
    data: Callable[[np.random.Generator, int], Any]  # training rows, as `put_data` takes them
    model_input: Callable[[np.random.Generator, int], Any]  # rows of x_t, as the denoiser sees
    start: Callable[[int], Any]  # the sampling start of n rows (None: the process's prior)

    def rates(self, examples_per_s: float, suffix: str = "_per_s") -> dict[str, float]:
        """`examples_per_s` in each unit: {"tokens_per_s": ...}."""
        return {f"{unit}{suffix}": examples_per_s * count for unit, count in self.units.items()}


@dataclasses.dataclass(frozen=True)
class Family:
    """A representation's shape flags and its `build(spec, model, settings) -> Example`."""

    flags: tuple[str, ...]
    build: Callable[..., Example]


EXAMPLES: Registry[Family] = Registry("representation")
# The BenchSettings field each shape flag sets (None: not given).
SHAPE_FLAGS = {"--genes": "genes", "--components": "components", "--window": "window"}


def feature_example(spec, model: nn.Module, s) -> Example:
    """float32 features [G, K], every slot real."""
    del model
    G = FEATURE_SHAPE[0] if s.genes is None else s.genes
    K = FEATURE_SHAPE[1] if s.components is None else s.components
    normal = lambda rng, rows: rng.standard_normal((rows, G, K), np.float32)  # noqa: E731
    return Example(
        row=jax.ShapeDtypeStruct((G, K), np.float32), mask=np.ones((G, K), bool),
        label=f"features [{G}, {K}]", fields={"feature_shape": [G, K]}, units={},
        data=normal, model_input=normal, start=lambda n: None)


def _context(L: int) -> dict[str, np.ndarray]:
    """Random SNP context [L]: positions from 0 in base pairs, allele frequencies (raw, and the
    smoothed class and pooled ones of `data.views.row_context`)."""
    rng = np.random.default_rng(L)
    pos = np.concatenate([[0], np.cumsum(rng.integers(1, 2 * BP_PER_SNP, L - 1))])
    af = rng.uniform(0.0, 0.5, L).astype(np.float32)
    smoothed = np.clip(af, 1e-3, 1 - 1e-3)
    return {"pos": pos.astype(np.float32), "af": af, "class_af": smoothed, "pooled_af": smoothed}


def token_example(spec, model: nn.Module, s) -> Example:
    """Genotype tokens [H, L] with the pos/af context, every SNP real."""
    process = spec.process
    H = 2 if process.tokens == "haplotypes" else 1
    asked = int(process.window) if s.window is None else s.window
    multiple = model.length_multiple() if hasattr(model, "length_multiple") else 1
    L = -(-asked // multiple) * multiple
    V, mask_id = process.vocab_size, process.mask_id
    context = _context(L)

    def rows_of(tokens: np.ndarray) -> dict[str, np.ndarray]:
        n = tokens.shape[0]
        return {"tokens": tokens, **{k: np.repeat(v[None], n, axis=0) for k, v in context.items()}}

    fields = {"token_shape": [H, L], "tokens_per_example": H * L}
    if L != asked:
        fields["window_asked"] = asked  # rounded up to the model's length multiple
    return Example(
        row={"tokens": jax.ShapeDtypeStruct((H, L), np.int8),
             **{k: jax.ShapeDtypeStruct((L,), np.float32) for k in context}},
        mask=None, label=f"tokens [{H}, {L}]", fields=fields, units={"tokens": H * L},
        data=lambda rng, rows: rows_of(rng.integers(0, V, (rows, H, L), dtype=np.int8)),
        # x_t as the sampler hands it to the denoiser: int32, some tokens MASK
        model_input=lambda rng, rows: rows_of(rng.integers(0, mask_id + 1, (rows, H, L),
                                                           dtype=np.int32)),
        start=lambda n: rows_of(np.full((n, H, L), mask_id, np.int8)))


EXAMPLES.register("features", Family(("--genes", "--components"), feature_example))
EXAMPLES.register("tokens", Family(("--window",), token_example))


def check_shape_flags(specs, s) -> None:
    """InputError for a shape flag that no model of the run takes (--genes with only token
    models, --window with only feature models)."""
    kinds = sorted({spec.process.representation for spec in specs})
    taken = {flag for kind in kinds for flag in EXAMPLES[kind].flags}
    for flag, field in SHAPE_FLAGS.items():
        if getattr(s, field) is not None and flag not in taken:
            names = ", ".join(dict.fromkeys(spec.name for spec in specs))
            takes = ", ".join(f for kind in kinds for f in EXAMPLES[kind].flags)
            raise InputError(None, f"{flag} does not apply to {names} ({' and '.join(kinds)}; "
                             f"shape flags: {takes})")


def build_example(spec, model: nn.Module, s) -> Example:
    """The spec's Example, by its process's representation."""
    return EXAMPLES[spec.process.representation].build(spec, model, s)


def param_count(model: nn.Module, example: Example) -> int:
    """Parameters of `model` for `example`'s row (eval_shape, nothing allocated)."""
    leaves = jax.tree.leaves(abstract_params(model, example.row))
    return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in leaves))
