"""What a generator family is: the `Family` interface and the `FAMILIES` registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from genodiff_jax.data.views import VIEWS
from genodiff_jax.registry import Registry
from genodiff_jax.sampling.settings import SamplingSettings


@dataclasses.dataclass(frozen=True)
class Genotypes:
    """A sampled cohort as genotypes: int8 haplotypes [N, 2, S] (phased) or calls [N, S] in
    {0, 1, 2}, and the gene-PCA features [N, G, K] where the family samples them (else None)."""

    genotypes: np.ndarray
    features: np.ndarray | None = None

    @property
    def calls(self) -> np.ndarray:
        """Genotype calls int8 [N, S] (alternate alleles per person)."""
        g = self.genotypes
        return g.sum(axis=1, dtype=np.int8) if g.ndim == 3 else np.asarray(g, np.int8)


@dataclasses.dataclass(frozen=True)
class Example:
    """One example of a family as `genodiff bench` feeds it: spec, mask, JSON fields, units, and
    random host arrays. The timers and the batch search see only this."""

    row: Any  # a ShapeDtypeStruct, or a dict of them
    mask: np.ndarray | None  # real slots of an example (None: all)
    label: str  # "features [G, K]", for messages
    fields: dict  # the benchmark entry's shape fields
    units: dict[str, int]  # per-example counts that rates are also given in: {"tokens": H L}
    data: Callable[[np.random.Generator, int], Any]  # training rows, as `put_data` takes them
    model_input: Callable[[np.random.Generator, int], Any]  # rows of x_t, as the denoiser sees
    start: Callable[[int], Any]  # the sampling start of n rows (None: the process's prior)

    def rates(self, examples_per_s: float, suffix: str = "_per_s") -> dict[str, float]:
        """`examples_per_s` in each unit: {"tokens_per_s": ...}."""
        return {f"{unit}{suffix}": examples_per_s * count for unit, count in self.units.items()}


class Family(Protocol):
    """The interface of a generator family (see the package docstring)."""

    # What the family trains on: (prepared dataset, process, model) -> data.views.TrainingView.
    view: Callable[..., Any]
    # Step counts `genodiff sweep` tries when none are given (kept where the process accepts them).
    default_steps: tuple[int, ...]
    # Whether sampled values pass through a calling method (`sampling.calling.CALLERS`).
    takes_calling: bool

    def sampling_plan(self, trained, data) -> Any:
        """What `generate` needs of the run besides the settings, worked out once per run (the
        masked family's windows); None where nothing is."""

    def generate(self, trained, data, labels_N: np.ndarray, settings: SamplingSettings, *,
                 plan: Any = None, progress: bool = False) -> np.ndarray:
        """The cohort of `labels_N` as the family samples it (features, tokens, ...)."""

    def genotypes(self, samples: np.ndarray, data, calling: str | None) -> Genotypes:
        """`generate`'s output as genotypes (calling with `calling` where the family takes one)."""

    # Token families only (`genodiff impute` needs it): `inputs(trained, data, labels_N,
    # settings, known=None) -> {name: [N, ..., S]}`, what generating or imputing feeds the
    # denoiser besides the tokens (the panel family's reference rows, from `settings.reference`
    # or the training split).

    # Optional, for `genodiff bench`: the config whose recipe trains a model named with --model,
    # the shape flags ({flag: the BenchSettings field it sets}), `bench_example` and
    # `bench_workloads`.
    bench_recipe: str
    bench_flags: Mapping[str, str]

    def bench_example(self, process, model, shape: Mapping[str, int | None]) -> Example:
        """One random example for the benchmark, shaped by `shape` ({field: value or None}, the
        fields of `bench_flags`)."""

    def bench_workloads(self, steps) -> dict:
        """What `--project`'s step times are set against (`bench.projection.Steps`: its
        `times` and `training`)."""


FAMILIES: Registry[Family] = Registry("generator family")


def register_family(name: str, family: Family) -> Family:
    """Add `family` under `name` (its process's `representation`), and its `view` where the
    train loop, a layer below, finds it (`data.views.VIEWS`; the built-in families' views are
    registered there already, so training needs no family imported)."""
    if name in VIEWS and VIEWS[name] is not family.view:
        raise ValueError(f"dataset view {name!r} is already registered as another function")
    FAMILIES.register(name, family)
    if name not in VIEWS:
        VIEWS.register(name, family.view)
    return family


def unregister_family(name: str) -> None:
    """Take out what `register_family` added (tests)."""
    del FAMILIES[name], VIEWS[name]


def family_of(process) -> Family:
    """The family of a diffusion process: its `representation`'s entry."""
    return FAMILIES[process.representation]
