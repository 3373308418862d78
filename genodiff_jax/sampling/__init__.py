"""Sampling (DESIGN 1.2, 2): samplers, guidance, labels to generate, the cohort, genotype calls."""

from genodiff_jax.diffusion.gaussian_samplers import (
    DEFAULT_SAMPLER,
    SAMPLERS,
    DenoiseFn,
    Sampler,
    get_sampler,
    register_sampler,
    step_coefs,
    time_grid,
)
from genodiff_jax.sampling.calling import (
    CALLERS,
    call_genotypes,
    decode_features,
    frequency_calls,
    get_caller,
    register_caller,
    round_calls,
)
from genodiff_jax.sampling.cohort import (
    Denoiser,
    auto_batch_size,
    choose_batch_size,
    generate,
    trained_denoiser,
)
from genodiff_jax.sampling.guidance import guide, make_denoise_fn
from genodiff_jax.sampling.labels import (
    LABEL_STRATEGIES,
    apportion,
    draw_labels,
    labels_from_spec,
    register_labels,
)
from genodiff_jax.sampling.output import CohortTable, sample_ids, write_cohort
from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings, resolve_sampling

__all__ = [
    "CALLERS",
    "CohortTable",
    "DEFAULT_SAMPLER",
    "LABEL_STRATEGIES",
    "SAMPLERS",
    "DenoiseFn",
    "Denoiser",
    "OutputSettings",
    "SamplingSettings",
    "Sampler",
    "apportion",
    "auto_batch_size",
    "call_genotypes",
    "choose_batch_size",
    "decode_features",
    "draw_labels",
    "frequency_calls",
    "generate",
    "get_caller",
    "get_sampler",
    "guide",
    "labels_from_spec",
    "make_denoise_fn",
    "register_caller",
    "register_labels",
    "register_sampler",
    "round_calls",
    "sample_ids",
    "step_coefs",
    "resolve_sampling",
    "time_grid",
    "trained_denoiser",
    "write_cohort",
]
