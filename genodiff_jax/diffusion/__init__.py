"""The noise process: schedules, forward process, parameterisations and losses."""

from genodiff_jax.diffusion.forward import q_sample
from genodiff_jax.diffusion.losses import masked_mae, masked_mse
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
    "SCHEDULES",
    "Posterior",
    "Prediction",
    "Schedule",
    "betas_from_alpha_bar",
    "eps_to_x0",
    "even_timesteps",
    "expand_like",
    "get_prediction",
    "get_schedule",
    "masked_mae",
    "masked_mse",
    "q_sample",
    "register_prediction",
    "register_schedule",
    "respace",
    "schedule_from_betas",
    "v_from_x0_eps",
    "v_to_eps",
    "v_to_x0",
    "x0_to_eps",
]
