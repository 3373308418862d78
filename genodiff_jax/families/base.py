"""What a generator family is: the `Family` interface and the `FAMILIES` registry."""

from __future__ import annotations

import dataclasses
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


FAMILIES: Registry[Family] = Registry("generator family")
register_family = FAMILIES.register


def family_of(process) -> Family:
    """The family of a diffusion process: its `representation`'s entry."""
    return FAMILIES[process.representation]
