"""The gene-PCA family (DESIGN 1-2): Gaussian diffusion on per-gene PCA features [G, K], decoded
through the dataset's codec and called to genotypes by a calling method."""

from __future__ import annotations

import jax
import numpy as np

from genodiff_jax.data.views import feature_view
from genodiff_jax.families.base import Example, Genotypes, register_family
from genodiff_jax.sampling.calling import DEFAULT_CALLING, features_to_calls
from genodiff_jax.sampling.cohort import generate, trained_denoiser
from genodiff_jax.sampling.settings import SamplingSettings

FEATURE_SHAPE = (2048, 8)  # genodiff bench's (genes, components) without --genes/--components
# The project's goals on one accelerator (issue 16; the paper's recipe, DESIGN 1.2): the paper's
# training (its epochs over the 1KG training split at its batch) in under 2 minutes; 2504 people
# sampled with 500 ancestral steps in under 3 minutes, with 25 DPM-Solver++ steps in under 10 s.
TRAINING_GOAL_S = 120.0
SAMPLING_GOALS = {"ancestral": (500, 180.0), "dpmpp": (25, 10.0)}  # sampler: (steps, seconds)


class GenePCAFamily:
    bench_recipe = "experiments/base.py"  # the config whose recipe `genodiff bench --model` uses
    view = staticmethod(feature_view)
    default_steps = (5, 10, 25, 50, 100, 250, 500)
    takes_calling = True
    bench_flags = {"--genes": "genes", "--components": "components"}

    def sampling_plan(self, trained, data) -> None:
        return None

    def generate(self, trained, data, labels_N: np.ndarray, settings: SamplingSettings, *,
                 plan=None, progress: bool = False) -> np.ndarray:
        return generate(trained_denoiser(trained), process=trained.process, settings=settings,
                        labels_N=labels_N, shape=trained.row.shape, mask=data.mask,
                        progress=progress)

    def genotypes(self, samples: np.ndarray, data, calling: str | None) -> Genotypes:
        features, calls = features_to_calls(samples, data.codec, calling or DEFAULT_CALLING)
        return Genotypes(calls, features)

    def bench_example(self, process, model, shape) -> Example:
        """float32 features [G, K], every slot real."""
        G = FEATURE_SHAPE[0] if shape.get("genes") is None else shape["genes"]
        K = FEATURE_SHAPE[1] if shape.get("components") is None else shape["components"]
        normal = lambda rng, rows: rng.standard_normal((rows, G, K), np.float32)  # noqa: E731
        return Example(
            row=jax.ShapeDtypeStruct((G, K), np.float32), mask=np.ones((G, K), bool),
            label=f"features [{G}, {K}]", fields={"feature_shape": [G, K]}, units={},
            data=normal, model_input=normal, start=lambda n: None)


    def bench_workloads(self, st) -> dict:
        """The project's goals: the paper's training, and the cohort with each goal's sampler."""
        training = st.training()
        out = {"training": st.times(training["steps"], "train", TRAINING_GOAL_S, **training)}
        for sampler, (steps, goal_s) in SAMPLING_GOALS.items():
            out[f"sample_{sampler}"] = st.times(steps, "sample", goal_s, people=st.people,
                                                steps=steps)
        return out


register_family("features", GenePCAFamily())
