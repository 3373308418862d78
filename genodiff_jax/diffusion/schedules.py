"""Discrete noise schedules: a registry of beta schedules and the `Schedule` pytree.

Time is discrete as in DDPM: t in {0..T-1}, x_t = alpha_t x0 + sigma_t eps with
alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), and t = 0 the least noisy step.
A schedule is one function `num_steps -> betas [T]` (float64 numpy) registered by name;
everything else (abar, alpha, sigma, logsnr, posterior coefficients) is derived from the
betas in float64 and stored as float32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.registry import Registry

BetaFn = Callable[..., np.ndarray]

# `fn(num_steps, **hyper_parameters) -> betas [T] float64`, found by name.
SCHEDULES: Registry[BetaFn] = Registry("schedule")
register_schedule = SCHEDULES.register

DEFAULT_SCHEDULE = "cosine"


class Posterior(NamedTuple):
    """Coefficients of q(x_{t-1} | x_t, x0) = N(c1 x0 + c2 x_t, var)."""

    c1: jax.Array
    c2: jax.Array
    var: jax.Array
    log_var: jax.Array  # log(var) with var[0] = 0 replaced by var[1] (improved DDPM)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Schedule:
    """Float32 arrays [T] of a discrete schedule; a pytree, so it can be a jit argument.

    `timesteps[i]` is the step of the training grid that index i stands for: arange(T)
    for a full schedule, the kept steps for a respaced one (call the model with it).
    Everything is derived in float64 before the cast, so prefer the stored arrays to
    recomputing them: 1 - betas in float32 is poor where beta is near 1.
    """

    betas: jax.Array
    alpha_bar: jax.Array
    alpha: jax.Array  # sqrt(abar_t)
    sigma: jax.Array  # sqrt(1 - abar_t)
    logsnr: jax.Array  # log(abar_t / (1 - abar_t))
    posterior_c1: jax.Array
    posterior_c2: jax.Array
    posterior_var: jax.Array
    posterior_log_var: jax.Array
    timesteps: jax.Array  # int32

    @property
    def num_steps(self) -> int:
        return self.betas.shape[0]

    def alpha_sigma(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(alpha_t, sigma_t) gathered at integer indices t of any shape."""
        return self.alpha[t], self.sigma[t]

    def alpha_sigma_prev(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(alpha_{t-1}, sigma_{t-1}) with the clean endpoint (1, 0) at t = 0.

        Plain `alpha[t - 1]` would wrap around to the noisiest step at t = 0.
        """
        prev = jnp.maximum(t - 1, 0)
        first = t == 0
        alpha_prev = jnp.where(first, 1.0, self.alpha[prev]).astype(self.alpha.dtype)
        sigma_prev = jnp.where(first, 0.0, self.sigma[prev]).astype(self.sigma.dtype)
        return alpha_prev, sigma_prev

    def posterior(self, t: jax.Array) -> Posterior:
        """Ancestral-sampler coefficients of q(x_{t-1} | x_t, x0) at integer t."""
        return Posterior(
            self.posterior_c1[t],
            self.posterior_c2[t],
            self.posterior_var[t],
            self.posterior_log_var[t],
        )


def schedule_from_betas(betas: np.ndarray, timesteps: np.ndarray | None = None) -> Schedule:
    """Derive every schedule array from betas [T] in float64 and store them as float32."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size == 0:
        raise ValueError(f"betas must be a non-empty 1-D array, got shape {betas.shape}")
    if not np.all((betas > 0) & (betas < 1)):
        raise ValueError("betas must lie in (0, 1)")
    num_steps = betas.shape[0]
    timesteps = np.arange(num_steps) if timesteps is None else np.asarray(timesteps)
    if timesteps.shape != (num_steps,):
        raise ValueError(f"timesteps has shape {timesteps.shape}, expected ({num_steps},)")

    alpha_bar = np.cumprod(1.0 - betas)
    # 1 - abar from the log keeps full relative precision where abar is close to 1.
    one_minus_alpha_bar = -np.expm1(np.cumsum(np.log1p(-betas)))
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    one_minus_alpha_bar_prev = np.concatenate([[0.0], one_minus_alpha_bar[:-1]])

    c1 = betas * np.sqrt(alpha_bar_prev) / one_minus_alpha_bar
    c2 = one_minus_alpha_bar_prev * np.sqrt(1.0 - betas) / one_minus_alpha_bar
    var = betas * one_minus_alpha_bar_prev / one_minus_alpha_bar
    # var[0] = 0 has no log; improved DDPM uses var[1] there (a one-step schedule has none).
    var_for_log = np.concatenate([var[1:2], var[1:]]) if num_steps > 1 else betas
    log_var = np.log(var_for_log)

    def f32(a: np.ndarray) -> jax.Array:
        return jnp.asarray(a, dtype=jnp.float32)

    return Schedule(
        betas=f32(betas),
        alpha_bar=f32(alpha_bar),
        alpha=f32(np.sqrt(alpha_bar)),
        sigma=f32(np.sqrt(one_minus_alpha_bar)),
        logsnr=f32(np.log(alpha_bar) - np.log(one_minus_alpha_bar)),
        posterior_c1=f32(c1),
        posterior_c2=f32(c2),
        posterior_var=f32(var),
        posterior_log_var=f32(log_var),
        timesteps=jnp.asarray(timesteps, dtype=jnp.int32),
    )


def get_schedule(name: str, num_steps: int, **kwargs) -> Schedule:
    """Build the registered schedule `name` with T = num_steps and its hyper-parameters `kwargs`."""
    betas_fn = SCHEDULES[name]
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    try:
        betas = betas_fn(num_steps, **kwargs)
    except TypeError as e:  # an unknown hyper-parameter
        raise ValueError(f"schedule {name!r}: {e}") from e
    return schedule_from_betas(betas)


def betas_from_alpha_bar(
    alpha_bar_fn: Callable[[np.ndarray], np.ndarray], num_steps: int, max_beta: float = 0.999
) -> np.ndarray:
    """beta_t = min(1 - abar((t+1)/T) / abar(t/T), max_beta) for a continuous abar on [0, 1].

    The clip keeps the last step from being pure noise (abar(1) is 0 for cosine).
    """
    t = np.arange(num_steps, dtype=np.float64)
    ratio = alpha_bar_fn((t + 1) / num_steps) / alpha_bar_fn(t / num_steps)
    return np.minimum(1.0 - ratio, max_beta)


@register_schedule("cosine")
def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Improved-DDPM cosine schedule: abar(u) = cos^2((u + s) / (1 + s) * pi / 2)."""

    def alpha_bar_fn(u: np.ndarray) -> np.ndarray:
        return np.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    return betas_from_alpha_bar(alpha_bar_fn, num_steps, max_beta)


@register_schedule("linear")
def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """DDPM linear betas; the endpoints are given for T = 1000 and scaled by 1000 / T.

    The scaling (improved DDPM's get_named_beta_schedule) keeps abar_{T-1} about the same
    for any T; T = 1000 gives exactly beta_start..beta_end.
    """
    scale = 1000.0 / num_steps
    betas = np.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=np.float64)
    if betas[-1] >= 1:
        raise ValueError(f"linear schedule with T={num_steps} gives beta >= 1; use T >= 21")
    return betas


@register_schedule("sigmoid")
def sigmoid_betas(
    num_steps: int,
    start: float = -3.0,
    end: float = 3.0,
    tau: float = 1.0,
    clip_min: float = 1e-9,
    max_beta: float = 0.999,
) -> np.ndarray:
    """Sigmoid schedule (Chen 2023, Jabri et al. 2023), discretised like cosine.

    abar(u) = (sig(end/tau) - sig((u (end - start) + start)/tau)) / (sig(end/tau) - sig(start/tau)),
    clipped below at clip_min so the ratio at u = 1 stays finite.
    """

    def sig(z: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))

    v_start, v_end = sig(start / tau), sig(end / tau)

    def alpha_bar_fn(u: np.ndarray) -> np.ndarray:
        v = sig((u * (end - start) + start) / tau)
        return np.clip((v_end - v) / (v_end - v_start), clip_min, 1.0)

    return betas_from_alpha_bar(alpha_bar_fn, num_steps, max_beta)


def respace(schedule: Schedule, timesteps: np.ndarray | jax.Array) -> Schedule:
    """Keep the steps `timesteps` (increasing indices into `schedule`); recompute betas.

    beta'_i = 1 - abar_{k_i} / abar_{k_{i-1}} (improved DDPM), so abar at the kept steps is
    unchanged. The result's `timesteps` holds the original training-grid steps.
    Runs on the host (numpy); call it outside jit.
    """
    keep = np.asarray(timesteps)
    if keep.ndim != 1 or keep.size == 0 or not np.issubdtype(keep.dtype, np.integer):
        raise ValueError("timesteps must be a non-empty 1-D integer array")
    if np.any(np.diff(keep) <= 0) or keep[0] < 0 or keep[-1] >= schedule.num_steps:
        raise ValueError(
            f"timesteps must be strictly increasing in [0, {schedule.num_steps}), got {keep}"
        )
    # Where abar > 1/2, log abar from the float32 logsnr keeps the relative precision of
    # the small betas near t = 0 that 1 - abar_i / abar_{i-1} on float32 abar would lose;
    # below 1/2 the float32 abar itself is the more precise source.
    logsnr = np.asarray(schedule.logsnr, dtype=np.float64)[keep]
    alpha_bar = np.asarray(schedule.alpha_bar, dtype=np.float64)[keep]
    log_alpha_bar = np.where(logsnr > 0, -np.logaddexp(0.0, -logsnr), np.log(alpha_bar))
    log_alpha_bar_prev = np.concatenate([[0.0], log_alpha_bar[:-1]])
    betas = -np.expm1(log_alpha_bar - log_alpha_bar_prev)
    return schedule_from_betas(betas, timesteps=np.asarray(schedule.timesteps)[keep])


def even_timesteps(num_steps: int, count: int) -> np.ndarray:
    """`count` evenly spread steps of 0..num_steps-1, both ends included (for `respace`)."""
    if not 1 <= count <= num_steps:
        raise ValueError(f"count must be in [1, {num_steps}], got {count}")
    if count == 1:
        return np.array([num_steps - 1])
    return np.round(np.linspace(0, num_steps - 1, count)).astype(np.int64)
