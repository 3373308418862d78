"""What a generator family is: the `Family` interface and the `FAMILIES` registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

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

    # Optional, for `genodiff bench`: its shape flags ({flag: the BenchSettings field it sets}) and
    # `bench_example`.
    bench_flags: Mapping[str, str]

    def bench_example(self, process, model, shape: Mapping[str, int | None]) -> Example:
        """One random example for the benchmark, shaped by `shape` ({field: value or None}, the
        fields of `bench_flags`)."""


FAMILIES: Registry[Family] = Registry("generator family")
register_family = FAMILIES.register


def family_of(process) -> Family:
    """The family of a diffusion process: its `representation`'s entry."""
    return FAMILIES[process.representation]
