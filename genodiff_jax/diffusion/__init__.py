"""Diffusion processes found by name (`PROCESSES`): the Gaussian one with its schedules,
parameterisations and losses."""

from genodiff_jax.diffusion.forward import q_sample

# Importing a process module registers it.
from genodiff_jax.diffusion.gaussian import GaussianProcess  # noqa: E402
from genodiff_jax.diffusion.losses import masked_mae, masked_mse
from genodiff_jax.diffusion.masked import MASKING_SCHEDULES, MaskedProcess  # noqa: E402
from genodiff_jax.diffusion.predictions import (
    DEFAULT_PREDICTION,
    PREDICTIONS,
    Prediction,
    eps_to_x0,
    expand_like,
    get_prediction,
    register_prediction,
    v_from_x0_eps,
    v_to_eps,
    v_to_x0,
    x0_to_eps,
)
from genodiff_jax.diffusion.process import (
    PROCESSES,
    Process,
    build_process,
    register_process,
)
from genodiff_jax.diffusion.schedules import (
    DEFAULT_SCHEDULE,
    SCHEDULES,
    Posterior,
    Schedule,
    betas_from_alpha_bar,
    even_timesteps,
    get_schedule,
    register_schedule,
    respace,
    schedule_from_betas,
)

__all__ = [
    "DEFAULT_PREDICTION",
    "DEFAULT_SCHEDULE",
    "PREDICTIONS",
    "PROCESSES",
    "SCHEDULES",
    "GaussianProcess",
    "MASKING_SCHEDULES",
    "MaskedProcess",
    "Posterior",
    "Prediction",
    "Process",
    "Schedule",
    "betas_from_alpha_bar",
    "build_process",
    "eps_to_x0",
    "even_timesteps",
    "expand_like",
    "get_prediction",
    "get_schedule",
    "masked_mae",
    "masked_mse",
    "q_sample",
    "register_prediction",
    "register_process",
    "register_schedule",
    "respace",
    "schedule_from_betas",
    "v_from_x0_eps",
    "v_to_eps",
    "v_to_x0",
    "x0_to_eps",
]
