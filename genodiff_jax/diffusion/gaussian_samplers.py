"""The Gaussian process's samplers: pure functions, one `lax.scan` over a time-grid array, found
by name in `SAMPLERS`.

Every sampler is `sample(denoise_fn, schedule, key, x_T, ts, *, prediction, mask=None,
clip_x0=None, **options) -> x_0` with

- `denoise_fn(x_t, t_B) -> model output` (eps, v or x0; see `guidance.make_denoise_fn`), called
  with the training-grid step `schedule.timesteps[t]`, so samplers never see the model;
- `schedule`: the schedule to sample on: the training one, or `respace(...)` of it for fewer steps;
- `ts`: int32 [S], strictly decreasing indices into `schedule` (usually `arange(S)[::-1]`, see
  `time_grid`). Step j goes from grid point ts[j] to ts[j + 1], and the last one to the clean end
  (alpha = 1, sigma = 0). S model calls in all; S is the scan length, so only the grid's length
  (not its values) is part of the compiled shape;
- `key`: one PRNG key, or one per row ([B]; the cohort uses these, so a sample does not depend on
  the batch it is drawn in). The noise of step j is `normal(fold_in(key, j))` (per row: of the row's
  key, shaped like one row).

The network output is read by one conversion, `prediction.to_x0_eps`, so every sampler works with
every schedule and prediction. x0_hat is then clipped to [-clip_x0, clip_x0] when asked (off by
default: the features are z-scores, with no natural range) and set to 0 in padded slots (`mask`
False), where x0 is 0 by construction; eps_hat is recomputed from x0_hat where either changed it.

The samplers here: `ancestral` (DDPM) and `ddim` (option `eta`); the deterministic multistep ODE
solvers (`dpmpp`, `dpmpp_3m`, `unipc`) are in `diffusion.multistep`, registered in the same
`SAMPLERS`.

Coefficients between two grid points (t, s), s < t, use the stored float32 schedule arrays only,
never 1 - beta (see `diffusion.schedules`): with L = log-SNR,
  q(x_s | x_t, x0) = N(c1 x0 + c2 x_t, var),  c1 = alpha_s (-expm1(L_t - L_s)),
  c2 = (alpha_t / alpha_s) (sigma_s^2 / sigma_t^2),  var = sigma_s^2 (-expm1(L_t - L_s)),
which are the stored `posterior_*` arrays when s = t - 1 (used there, as they were derived in
float64).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.diffusion.predictions import Prediction
from genodiff_jax.diffusion.schedules import Schedule, even_timesteps, respace
from genodiff_jax.registry import Registry

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


class Sampler(Protocol):
    def __call__(self, denoise_fn: DenoiseFn, schedule: Schedule, key: jax.Array,
                 x_T: jax.Array, ts: jax.Array, *, prediction: Prediction,
                 mask: jax.Array | None = None, clip_x0: float | None = None,
                 **options) -> jax.Array: ...


SAMPLERS: Registry[Sampler] = Registry("sampler")
register_sampler = SAMPLERS.register

DEFAULT_SAMPLER = "ancestral"


def get_sampler(name: str) -> Sampler:
    """The registered sampler `name` ("ancestral", "ddim", "dpmpp", "dpmpp_3m" or "unipc")."""
    return SAMPLERS[name]


def time_grid(schedule: Schedule, steps: int | None = None) -> tuple[Schedule, jax.Array]:
    """(schedule to sample on, ts) for `steps` evenly spread steps (all of them when None).

    Fewer steps respace the schedule (`respace`, on the host), so the ancestral sampler's
    posterior uses float64-derived coefficients; ts then visits every index of the result.
    """
    T = schedule.num_steps
    if steps is not None and steps != T:
        schedule = respace(schedule, even_timesteps(T, steps))
    return schedule, jnp.arange(schedule.num_steps - 1, -1, -1, dtype=jnp.int32)


# ----------------------------------------------------------------------------- shared parts


class StepCoefs(NamedTuple):
    """Schedule values at both ends of one step t -> s (s = -1: the clean end)."""

    t_train: jax.Array  # training-grid step of t, for the model
    alpha_t: jax.Array
    sigma_t: jax.Array
    logsnr_t: jax.Array
    alpha_s: jax.Array
    sigma_s: jax.Array
    logsnr_s: jax.Array  # +inf at the clean end
    post_c1: jax.Array
    post_c2: jax.Array
    post_var: jax.Array


def step_coefs(schedule: Schedule, t: jax.Array, s: jax.Array) -> StepCoefs:
    """Coefficients for the step from index t to index s < t (or -1) of `schedule` (scalars)."""
    clean = s < 0
    s_ = jnp.maximum(s, 0)
    alpha_t, sigma_t, logsnr_t = schedule.alpha[t], schedule.sigma[t], schedule.logsnr[t]
    alpha_s = jnp.where(clean, 1.0, schedule.alpha[s_])
    sigma_s = jnp.where(clean, 0.0, schedule.sigma[s_])
    logsnr_s = jnp.where(clean, jnp.inf, schedule.logsnr[s_])
    # 1 - SNR_t / SNR_s, exact to float32 even for close steps; 1 at the clean end.
    one_minus_ratio = -jnp.expm1(logsnr_t - logsnr_s)
    c1 = alpha_s * one_minus_ratio
    c2 = jnp.where(clean, 0.0, alpha_t / alpha_s * jnp.square(sigma_s / sigma_t))
    var = jnp.square(sigma_s) * one_minus_ratio
    post = schedule.posterior(t)
    consecutive = s == t - 1
    return StepCoefs(
        t_train=schedule.timesteps[t],
        alpha_t=alpha_t, sigma_t=sigma_t, logsnr_t=logsnr_t,
        alpha_s=alpha_s, sigma_s=sigma_s, logsnr_s=logsnr_s,
        post_c1=jnp.where(consecutive, post.c1, c1),
        post_c2=jnp.where(consecutive, post.c2, c2),
        post_var=jnp.where(consecutive, post.var, var),
    )


def predict_x0_eps(
    denoise_fn: DenoiseFn, prediction: Prediction, x_t: jax.Array, c: StepCoefs, *,
    mask: jax.Array | None, clip_x0: float | None,
) -> tuple[jax.Array, jax.Array]:
    """(x0_hat, eps_hat) at x_t: one model call, the prediction's conversion, clip and mask."""
    t_B = jnp.full((x_t.shape[0],), c.t_train, jnp.int32)
    out = denoise_fn(x_t, t_B)
    x0_hat, eps_hat = prediction.to_x0_eps(out, x_t, c.alpha_t, c.sigma_t)
    if clip_x0 is None and mask is None:
        return x0_hat, eps_hat
    x0_new = x0_hat if clip_x0 is None else jnp.clip(x0_hat, -clip_x0, clip_x0)
    if mask is not None:
        x0_new = jnp.where(mask, x0_new, 0.0).astype(x0_hat.dtype)
    # Keep eps_hat consistent with the x0_hat actually used (as improved DDPM does after clipping):
    # where x0 is known to be 0, the exact eps is x_t / sigma_t.
    eps_new = (x_t - c.alpha_t * x0_new) / c.sigma_t
    return x0_new, jnp.where(x0_new == x0_hat, eps_hat, eps_new).astype(eps_hat.dtype)


def _is_batched_key(key: jax.Array) -> bool:
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.ndim == 1
    return key.ndim == 2  # raw uint32 keys [B, 2]


def step_noise(key: jax.Array, j: jax.Array, x: jax.Array) -> jax.Array:
    """Standard normal noise like x for step j: from one key, or one key per row."""
    if _is_batched_key(key):
        return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, j), x.shape[1:],
                                                    x.dtype))(key)
    return jax.random.normal(jax.random.fold_in(key, j), x.shape, x.dtype)


# Set while tracing a diagnostic run (`reporting_non_finite_steps`): called on the host with each
# step number whose new state holds a NaN or an inf.
_NON_FINITE_STEP: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "non_finite_step", default=None)


@contextlib.contextmanager
def reporting_non_finite_steps(report: Callable[[int], None]) -> Iterator[None]:
    """Samplers traced inside call `report(j)` for each step j whose state is not finite (a
    diagnostic: every step adds a host callback)."""
    token = _NON_FINITE_STEP.set(report)
    try:
        yield
    finally:
        _NON_FINITE_STEP.reset(token)


def _with_finite_check(step, report: Callable[[int], None]):
    def checked(carry, xs):
        carry, out = step(carry, xs)
        floats = [x for x in jax.tree.leaves(carry) if jnp.issubdtype(x.dtype, jnp.floating)]
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in floats]))

        def host(j, ok):
            if not ok:
                report(int(j))

        jax.debug.callback(host, xs[0], finite, ordered=True)
        return carry, out

    return checked


def scan_grid(step, carry, ts: jax.Array):
    """Run `step(carry, (j, t, s))` over the grid: j the step number, s the next index (-1 last)."""
    report = _NON_FINITE_STEP.get()
    if report is not None:
        step = _with_finite_check(step, report)
    ts = jnp.asarray(ts, jnp.int32)
    s = jnp.concatenate([ts[1:], jnp.full((1,), -1, jnp.int32)])
    j = jnp.arange(ts.shape[0], dtype=jnp.int32)
    carry, _ = jax.lax.scan(step, carry, (j, ts, s))
    return carry


def check_grid(ts: np.ndarray | jax.Array, num_steps: int) -> None:
    """Raise ValueError unless ts is a non-empty, strictly decreasing index array
    of the schedule."""
    ts = np.asarray(ts)
    if ts.ndim != 1 or ts.size == 0 or not np.issubdtype(ts.dtype, np.integer):
        raise ValueError("ts must be a non-empty 1-D integer array")
    if np.any(np.diff(ts) >= 0) or ts[-1] < 0 or ts[0] >= num_steps:
        raise ValueError(f"ts must be strictly decreasing in [0, {num_steps}), got {ts}")


# ----------------------------------------------------------------------------- the samplers


@register_sampler("ancestral")
def ancestral(
    denoise_fn: DenoiseFn, schedule: Schedule, key: jax.Array, x_T: jax.Array, ts: jax.Array, *,
    prediction: Prediction, mask: jax.Array | None = None, clip_x0: float | None = None,
) -> jax.Array:
    """DDPM ancestral sampling (DESIGN 1.2): x_s = c1 x0_hat + c2 x_t + sqrt(var) z.

    The posterior variance beta~ is zero on the last step, so the result is x0_hat there. For fewer
    steps sample on a respaced schedule (`time_grid`).
    """

    def step(x_t, xs):
        j, t, s = xs
        c = step_coefs(schedule, t, s)
        x0_hat, _ = predict_x0_eps(denoise_fn, prediction, x_t, c, mask=mask, clip_x0=clip_x0)
        mean = c.post_c1 * x0_hat + c.post_c2 * x_t
        x_s = mean + jnp.sqrt(c.post_var) * step_noise(key, j, x_t)
        return x_s.astype(x_t.dtype), None

    return scan_grid(step, x_T, ts)


@register_sampler("ddim")
def ddim(
    denoise_fn: DenoiseFn, schedule: Schedule, key: jax.Array, x_T: jax.Array, ts: jax.Array, *,
    prediction: Prediction, mask: jax.Array | None = None, clip_x0: float | None = None,
    eta: float = 0.0,
) -> jax.Array:
    """DDIM (Song et al. 2021): x_s = alpha_s x0_hat + sqrt(sigma_s^2 - s_eta^2) eps_hat + s_eta z.

    s_eta^2 = eta^2 var(t -> s), the ancestral posterior variance: eta = 0 is deterministic, eta = 1
    the ancestral sampler written in eps form. eta in [0, 1].
    """

    def step(x_t, xs):
        j, t, s = xs
        c = step_coefs(schedule, t, s)
        x0_hat, eps_hat = predict_x0_eps(denoise_fn, prediction, x_t, c, mask=mask,
                                         clip_x0=clip_x0)
        var_eta = eta**2 * c.post_var
        # max(., 0): sigma_s^2 - var_eta is >= 0 in exact arithmetic for eta <= 1.
        dir_scale = jnp.sqrt(jnp.maximum(jnp.square(c.sigma_s) - var_eta, 0.0))
        x_s = c.alpha_s * x0_hat + dir_scale * eps_hat
        if eta != 0:  # static: eta = 0 draws no noise at all
            x_s = x_s + jnp.sqrt(var_eta) * step_noise(key, j, x_t)
        return x_s.astype(x_t.dtype), None

    return scan_grid(step, x_T, ts)
