"""The masked family (DESIGN 6): masked discrete diffusion on genotype tokens, generated window by
window over the region (`sampling.tokens`) and written as they are (phased haplotypes, or
dosages)."""

from __future__ import annotations

import numpy as np

from genodiff_jax.data.views import WindowPlan, token_plan
from genodiff_jax.families.base import Genotypes, register_family
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sampling.tokens import generate_tokens


class MaskedFamily:
    default_steps = (4, 8, 16, 32, 64, 128, 256)
    takes_calling = False

    def sampling_plan(self, trained, data) -> WindowPlan:
        return token_plan(data, trained.process, trained.model)

    def generate(self, trained, data, labels_N: np.ndarray, settings: SamplingSettings, *,
                 plan: WindowPlan | None = None, progress: bool = False) -> np.ndarray:
        plan = plan if plan is not None else self.sampling_plan(trained, data)
        return generate_tokens(trained, data, labels_N, plan, settings, progress=progress)

    def genotypes(self, samples: np.ndarray, data, calling: str | None) -> Genotypes:
        tokens = np.asarray(samples, np.int8)
        return Genotypes(tokens if tokens.shape[1] == 2 else tokens[:, 0])


register_family("tokens", MaskedFamily())
