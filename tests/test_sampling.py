"""Samplers against exact denoisers, hand-computed steps, and classifier-free guidance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.diffusion import (
    get_prediction,
    get_schedule,
    respace,
    schedule_from_betas,
    v_to_eps,
    x0_to_eps,
)
from genodiff_jax.diffusion.gaussian_samplers import reporting_non_finite_steps
from genodiff_jax.diffusion.process import sampler_option_names
from genodiff_jax.sampling import SAMPLERS, get_sampler, guide, make_denoise_fn, time_grid

T = 500
# x0 ~ N(MU, S^2) elementwise on a [2, 2] "feature" shape: a broad, a narrow and an offset slot.
MU = np.array([[0.5, -1.0], [2.0, 0.0]])
S = np.array([[1.0, 0.5], [0.3, 2.0]])


def exact_denoiser(schedule_full, prediction: str):
    """The Bayes-optimal network output for Gaussian data, at training steps t_B.

    E[eps | x_t] = sigma_t (x_t - alpha_t mu) / (alpha_t^2 s^2 + sigma_t^2),
    E[x0 | x_t] = mu + alpha_t s^2 (x_t - alpha_t mu) / (alpha_t^2 s^2 + sigma_t^2).
    """
    mu, s2 = jnp.asarray(MU, jnp.float32), jnp.asarray(S**2, jnp.float32)

    def denoise_fn(x_t, t_B):
        alpha_t, sigma_t = schedule_full.alpha_sigma(t_B)
        alpha_t, sigma_t = alpha_t[:, None, None], sigma_t[:, None, None]
        resid = (x_t - alpha_t * mu) / (alpha_t**2 * s2 + sigma_t**2)
        eps_hat, x0_hat = sigma_t * resid, mu + alpha_t * s2 * resid
        return {"eps": eps_hat, "x0": x0_hat, "v": alpha_t * eps_hat - sigma_t * x0_hat}[prediction]

    return denoise_fn


def run_sampler(name: str, steps: int, prediction: str = "eps", *, n: int = 4000,
                schedule_name: str = "cosine", seed: int = 0, x_T=None, **options) -> np.ndarray:
    full = get_schedule(schedule_name, T)
    schedule, ts = time_grid(full, steps)
    if x_T is None:
        x_T = jax.random.normal(jax.random.key(seed + 1), (n, *MU.shape))
    fn = jax.jit(lambda key, x_T, schedule, ts: get_sampler(name)(
        exact_denoiser(full, prediction), schedule, key, x_T, ts,
        prediction=get_prediction(prediction), **options))
    return np.asarray(fn(jax.random.key(seed), x_T, schedule, ts), np.float64)


# Discretisation allowance (relative variance error, mean error in units of s) per sampler and step
# count, for the cosine schedule. Measured errors of the exact discretised chains (see
# test_solver_order for the deterministic ones): at 500 steps all within 1 %; at 25 steps DDPM's
# posterior variance beta~ loses up to 31 % of the variance of broad data (it ignores the
# uncertainty about x0; the known reason learned variances help at few steps), DDIM up to 17 % and
# DPM-Solver++ overshoots by up to 23 % on the narrow s = 0.3 slot (second-order extrapolation
# over the big last steps of an evenly spaced grid), UniPC-2 by 22 % and DPM-Solver++(3M) by 16 %.
ALLOWANCE = {
    ("ancestral", 500): (0.03, 0.02), ("ancestral", 25): (0.36, 0.02),
    ("ddim0", 500): (0.03, 0.02), ("ddim0", 25): (0.20, 0.02),
    ("ddim1", 500): (0.03, 0.02), ("ddim1", 25): (0.36, 0.02),
    ("dpmpp", 500): (0.03, 0.02), ("dpmpp", 25): (0.26, 0.02),
    ("unipc", 500): (0.03, 0.02), ("unipc", 25): (0.26, 0.02),
    ("dpmpp_3m", 500): (0.03, 0.02), ("dpmpp_3m", 25): (0.20, 0.02),
}
CASES = {"ancestral": ("ancestral", {}), "ddim0": ("ddim", {"eta": 0.0}),
         "ddim1": ("ddim", {"eta": 1.0}), "dpmpp": ("dpmpp", {}), "unipc": ("unipc", {}),
         "dpmpp_3m": ("dpmpp_3m", {})}
DETERMINISTIC = [("ddim", {"eta": 0.0}), ("dpmpp", {}), ("unipc", {}), ("dpmpp_3m", {})]


@pytest.mark.parametrize("steps", [500, 25])
@pytest.mark.parametrize("case", sorted(CASES))
def test_moments_match_gaussian_data(case: str, steps: int) -> None:
    """Sample mean and variance of z = (x - mu) / s within 4.5 standard errors
    plus the allowance."""
    name, options = CASES[case]
    n = 4000
    z = (run_sampler(name, steps, n=n, **options) - MU) / S
    var_tol, mean_tol = ALLOWANCE[(case, steps)]
    se_mean, se_var = 1 / np.sqrt(n), np.sqrt(2 / (n - 1))
    assert np.all(np.abs(z.mean(0)) <= 4.5 * se_mean + mean_tol), z.mean(0)
    assert np.all(np.abs(z.var(0) - 1) <= 4.5 * se_var + var_tol), z.var(0)


@pytest.mark.parametrize("name,options", [("ancestral", {}), ("ddim", {"eta": 0.0}),
                                          ("dpmpp", {}), ("unipc", {}), ("dpmpp_3m", {})])
@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_every_prediction_gives_the_same_samples(name: str, options: dict,
                                                 prediction: str) -> None:
    """The exact v and x0 denoisers are the eps one re-expressed: same noise, same samples."""
    ref = run_sampler(name, 25, "eps", n=500, **options)
    out = run_sampler(name, 25, prediction, n=500, **options)
    np.testing.assert_allclose(out, ref, atol=2e-4)
    z = (out - MU) / S  # and, directly, the v/x0 chain matches the data
    assert np.all(np.abs(z.mean(0)) < 4.5 / np.sqrt(500) + 0.02)


def test_ddim_eta_one_is_ancestral() -> None:
    """DDIM with eta = 1 is the DDPM posterior written in eps form: same noise, same samples."""
    np.testing.assert_allclose(run_sampler("ddim", 25, n=300, eta=1.0),
                               run_sampler("ancestral", 25, n=300), atol=1e-4)


def test_deterministic_samplers_ignore_the_key() -> None:
    for name, options in DETERMINISTIC:
        x_T = jax.random.normal(jax.random.key(3), (64, *MU.shape))
        a = run_sampler(name, 25, x_T=x_T, seed=0, **options)
        b = run_sampler(name, 25, x_T=x_T, seed=5, **options)
        np.testing.assert_array_equal(a, b)


def _gain_and_offset(name: str, steps: int, schedule_name: str = "cosine", **options):
    """A deterministic sampler is affine per slot on Gaussian data: x0 = a x_T + b."""
    x_T = jnp.stack([jnp.zeros(MU.shape), jnp.ones(MU.shape)])
    out = run_sampler(name, steps, x_T=x_T, schedule_name=schedule_name, **options)
    return out[1] - out[0], out[0]


@pytest.mark.parametrize("schedule_name", ["cosine", "linear"])
def test_solver_order(schedule_name: str) -> None:
    """Exact output variance a^2 (no Monte Carlo): DDIM converges at first order (error halves
    when the steps double), DPM-Solver++(2M) at second order (error quarters)."""

    def err(name: str, steps: int, **options) -> float:
        a, _ = _gain_and_offset(name, steps, schedule_name, **options)
        return float(np.max(np.abs(a**2 / S**2 - 1)))

    ddim = [err("ddim", k, eta=0.0) for k in (50, 100, 200)]
    dpm = [err("dpmpp", k) for k in (50, 100, 200)]
    for e0, e1 in zip(ddim[:-1], ddim[1:]):
        assert 0.4 < e1 / e0 < 0.6, ddim
    for e0, e1 in zip(dpm[:-1], dpm[1:]):
        assert 0.15 < e1 / e0 < 0.35, dpm
    assert err("dpmpp", 500) < 2e-3 and err("ddim", 500, eta=0.0) < 2e-2


# ----------------------------------------------------------------------------- multistep solvers


def lambda_schedule(steps: int, lam_min: float = -6.0, lam_max: float = 4.0):
    """`steps` points evenly spaced in lambda = logsnr / 2, from lam_max (index 0) to lam_min.

    Refining it shrinks every step h, unlike an evenly spaced t-grid, whose last steps keep
    h ~ log 2 however many there are. Starting at lam_min = -6 keeps the error of the warm-up's
    low-order first steps (it scales with alpha there) below the solvers' own: from lambda = -2,
    dpmpp_3m measures second order.
    """
    logsnr = np.linspace(2 * lam_max, 2 * lam_min, steps)
    log_alpha_bar = -np.logaddexp(0.0, -logsnr)
    return schedule_from_betas(-np.expm1(np.diff(log_alpha_bar, prepend=0.0)))


def exact_solution(schedule, x_T: np.ndarray) -> np.ndarray:
    """The exact probability-flow ODE from x_T at the schedule's last index to index 0, ended as
    the solvers end (x0_hat there): for Gaussian data the flow keeps
    z = (x - alpha mu) / sqrt(alpha^2 s^2 + sigma^2) fixed."""
    (a_0, a_T), (s_0, s_T) = (np.asarray(v, np.float64)[[0, -1]]
                              for v in (schedule.alpha, schedule.sigma))
    sd_0, sd_T = np.sqrt(a_0**2 * S**2 + s_0**2), np.sqrt(a_T**2 * S**2 + s_T**2)
    x_0 = a_0 * MU + sd_0 * (x_T - a_T * MU) / sd_T
    return MU + a_0 * S**2 * (x_0 - a_0 * MU) / sd_0**2


def _solve(name: str, schedule, x_T: np.ndarray, full=None, **options) -> np.ndarray:
    """`name` over every index of `schedule` (respaced from `full`, if given) with the exact
    denoiser in float32, predicting x0 (x0 from eps loses digits to 1/alpha at high noise)."""
    steps = schedule.num_steps
    out = get_sampler(name)(
        exact_denoiser(schedule if full is None else full, "x0"), schedule, jax.random.key(0),
        jnp.asarray(x_T, jnp.float32), jnp.arange(steps - 1, -1, -1, dtype=jnp.int32),
        prediction=get_prediction("x0"), **options)
    return np.asarray(out, np.float64)


X_T_LINE = np.array([-2.0, 0.0, 1.0])[:, None, None] * np.ones(MU.shape)  # the maps are affine


# Max |x - exact| / s at 21 and 41 steps (h = 0.5, 0.25) and the order between them, measured:
# unipc-1 8.9e-2, 2.3e-2 (1.93); unipc-2 1.9e-2, 2.6e-3 (2.89); unipc-3 2.2e-3, 1.4e-4 (3.96);
# dpmpp_3m 1.3e-2, 7.8e-4 (4.06); for comparison dpmpp 1.89, ddim 0.96. From 41 to 81 steps:
# 1.98, 2.97, 3.1, 3.74. unipc-3 is the slow one: its error changes sign near 25 steps and
# error / h^4 settles (near -0.045, float64 reference loop) only past 160 steps, where float32
# rounding (~3e-6 here) takes over, so 21 -> 41 overstates its order and 41 -> 81 understates it.
@pytest.mark.parametrize("name,options,order", [
    ("unipc", {"order": 1}, 2), ("unipc", {"order": 2}, 3), ("unipc", {"order": 3}, 4),
    ("dpmpp_3m", {}, 3)])
def test_multistep_order(name: str, options: dict, order: int) -> None:
    """Error against the exact ODE solution shrinks at the stated order as steps double."""
    e21, e41 = (np.max(np.abs(_solve(name, lambda_schedule(k), X_T_LINE, **options)
                              - exact_solution(lambda_schedule(k), X_T_LINE)) / S)
                for k in (21, 41))
    assert np.log2(e21 / e41) > order - 0.3, (e21, e41, np.log2(e21 / e41))


def reference_multistep(name: str, schedule, x_T: np.ndarray, order: int,
                        lower_order_final: bool, d2_weight: float = 2.0) -> np.ndarray:
    """diffusers' list-based `step()` in float64 with the exact denoiser, over every index of
    `schedule` and then to the clean end: UniPCMultistepScheduler (bh2, predict_x0) for "unipc",
    DPMSolverMultistepScheduler (dpmsolver++) for "dpmpp_3m", its D2 term times d2_weight
    (diffusers: 1; see `dpmpp_3m`). Orders as `lower_order_final`; the last step is first order."""
    lam = np.append(np.asarray(schedule.logsnr, np.float64)[::-1] / 2, np.inf)
    alpha = np.append(np.asarray(schedule.alpha, np.float64)[::-1], 1.0)
    sigma = np.append(np.asarray(schedule.sigma, np.float64)[::-1], 0.0)
    steps = schedule.num_steps
    ms: list[np.ndarray] = []  # x0_hat at each point so far

    def bh2(h, rks, p):  # UniPC's R, b, h phi_1 and B(h) (predict_x0: hh = -h)
        hh = -h
        h_phi_1 = np.expm1(hh)
        h_phi_k, factorial_i, B_h, R, b = h_phi_1 / hh - 1, 1, np.expm1(hh), [], []
        for i in range(1, p + 1):
            R.append(rks ** (i - 1))
            b.append(h_phi_k * factorial_i / B_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        return np.stack(R), np.array(b), h_phi_1, B_h

    def uni_p(x, k, p):  # from point k to k + 1
        m0, h = ms[-1], lam[k + 1] - lam[k]
        rks = np.array([(lam[k - i] - lam[k]) / h for i in range(1, p)] + [1.0])
        d1s = [(ms[-(i + 1)] - m0) / rks[i - 1] for i in range(1, p)]
        R, b, h_phi_1, B_h = bh2(h, rks, p)
        rhos = [] if p == 1 else [0.5] if p == 2 else np.linalg.solve(R[:-1, :-1], b[:-1])
        pred_res = sum((rho * d1 for rho, d1 in zip(rhos, d1s)), np.zeros_like(x))
        x_t_ = sigma[k + 1] / sigma[k] * x - alpha[k + 1] * h_phi_1 * m0
        return x_t_ - alpha[k + 1] * B_h * pred_res

    def uni_c(m_new, x_last, k, p):  # from point k - 1 to k again, knowing m_new at k
        m0, h = ms[-1], lam[k] - lam[k - 1]
        rks = np.array([(lam[k - 1 - i] - lam[k - 1]) / h for i in range(1, p)] + [1.0])
        d1s = [(ms[-(i + 1)] - m0) / rks[i - 1] for i in range(1, p)]
        R, b, h_phi_1, B_h = bh2(h, rks, p)
        rhos = [0.5] if p == 1 else np.linalg.solve(R, b)
        corr_res = sum((rho * d1 for rho, d1 in zip(rhos[:-1], d1s)), np.zeros_like(x_last))
        x_t_ = sigma[k] / sigma[k - 1] * x_last - alpha[k] * h_phi_1 * m0
        return x_t_ - alpha[k] * B_h * (corr_res + rhos[-1] * (m_new - m0))

    def dpm(x, k, p):  # from point k to k + 1
        m0, h = ms[-1], lam[k + 1] - lam[k]
        x_t = sigma[k + 1] / sigma[k] * x - alpha[k + 1] * (np.exp(-h) - 1.0) * m0
        if p == 1:
            return x_t
        r0 = (lam[k] - lam[k - 1]) / h
        D1_0 = (m0 - ms[-2]) / r0
        if p == 2:
            return x_t - 0.5 * alpha[k + 1] * (np.exp(-h) - 1.0) * D1_0
        r1 = (lam[k - 1] - lam[k - 2]) / h
        D1_1 = (ms[-2] - ms[-3]) / r1
        D1 = D1_0 + (r0 / (r0 + r1)) * (D1_0 - D1_1)
        D2 = (1.0 / (r0 + r1)) * (D1_0 - D1_1)
        return (x_t + alpha[k + 1] * ((np.exp(-h) - 1.0) / h + 1.0) * D1
                - d2_weight * alpha[k + 1] * ((np.exp(-h) - 1.0 + h) / h**2 - 0.5) * D2)

    x, x_last, p_last = x_T, x_T, 1
    for k in range(steps):
        m = MU + alpha[k] * S**2 * (x - alpha[k] * MU) / (alpha[k] ** 2 * S**2 + sigma[k] ** 2)
        if name == "unipc" and k > 0:
            x = uni_c(m, x_last, k, p_last)
        ms.append(m)
        p = min(order, k + 1, steps - k) if lower_order_final else min(order, k + 1)
        p = 1 if k == steps - 1 else p
        x_last, p_last = x, p
        x = uni_p(x, k, p) if name == "unipc" else dpm(x, k, p)
    return x


@pytest.mark.parametrize("name,order,lower_order_final,steps", [
    ("unipc", 1, True, 10), ("unipc", 2, True, 10), ("unipc", 3, True, 10),
    ("unipc", 3, False, 10), ("unipc", 3, True, 2), ("dpmpp_3m", 3, True, 10),
    ("dpmpp_3m", 3, False, 10), ("dpmpp_3m", 3, True, 3)])
def test_multistep_matches_the_reference_algorithm(name: str, order: int,
                                                   lower_order_final: bool, steps: int) -> None:
    """The scan (carried x0_hat and lambdas, warm-up, corrector, last steps) takes the steps of
    the reference's list-based loop, on a respaced cosine grid (uneven h)."""
    full = get_schedule("cosine", T)
    schedule, _ = time_grid(full, steps)
    x_T = np.asarray(jax.random.normal(jax.random.key(5), (3, *MU.shape)), np.float64)
    options = {"order": order} if name == "unipc" else {}
    out = _solve(name, schedule, x_T, full, lower_order_final=lower_order_final, **options)
    ref = reference_multistep(name, schedule, x_T, order, lower_order_final)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_published_3m_weight_is_second_order() -> None:
    """Why dpmpp_3m doubles the D2 weight of the reference codes: the float64 reference loop
    with the published weight converges at second order, with the doubled one at third. Max
    error / s at 41, 81, 161 steps, measured: published 3.3e-3, 7.1e-4, 1.7e-4 (orders 2.24,
    2.08, going to 2); doubled 7.8e-4, 5.7e-5, 4.9e-6 (3.77, 3.55)."""
    def orders(weight: float) -> np.ndarray:
        errs = []
        for steps in (41, 81, 161):
            schedule = lambda_schedule(steps)
            out = reference_multistep("dpmpp_3m", schedule, X_T_LINE, 3, True, d2_weight=weight)
            errs.append(np.max(np.abs(out - exact_solution(schedule, X_T_LINE)) / S))
        return np.log2(np.array(errs[:-1]) / errs[1:])

    published, doubled = orders(1.0), orders(2.0)
    assert published[-1] < 2.3 and np.all(doubled > 3.3), (published, doubled)


def test_multistep_options_are_checked() -> None:
    """order and lower_order_final are keyword options a config can set; bad values are refused
    with the sampler's name before anything is traced."""
    common = ("prediction", "mask")
    assert sampler_option_names(SAMPLERS["unipc"], common) == [
        "clip_x0", "order", "lower_order_final"]
    assert sampler_option_names(SAMPLERS["dpmpp_3m"], common) == ["clip_x0", "lower_order_final"]
    schedule, x_T = lambda_schedule(4), np.zeros((1, *MU.shape))
    for bad in (0, 4, 2.0, True, "3"):
        with pytest.raises(ValueError, match="'unipc': order must be 1, 2 or 3"):
            _solve("unipc", schedule, x_T, order=bad)
    for name in ("unipc", "dpmpp_3m"):
        with pytest.raises(ValueError, match=f"'{name}': lower_order_final must be True or False"):
            _solve(name, schedule, x_T, lower_order_final="no")


# ----------------------------------------------------------------------------- hand-computed


def _toy_eps(x: np.ndarray, t_cont: float) -> np.ndarray:
    return 0.5 * x + 0.1 * t_cont


@pytest.mark.parametrize("kind", ["T3", "respaced"])
def test_three_step_ancestral_by_hand(kind: str) -> None:
    """Three ancestral steps of a toy eps model, with the noise the sampler draws, in float64."""
    if kind == "T3":
        betas = np.array([0.1, 0.3, 0.5])
        schedule, T_train, steps_train = schedule_from_betas(betas), 3, np.arange(3)
        abar = np.cumprod(1 - betas)
    else:
        full = get_schedule("cosine", T)
        steps_train = np.array([0, 200, 400])
        schedule, T_train = respace(full, steps_train), T
        abar = np.asarray(full.alpha_bar, np.float64)[steps_train]
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    beta = 1 - abar / abar_prev  # the respaced betas (T3: the betas themselves)
    c1 = beta * np.sqrt(abar_prev) / (1 - abar)
    c2 = (1 - abar_prev) * np.sqrt(1 - beta) / (1 - abar)
    var = beta * (1 - abar_prev) / (1 - abar)

    mask = np.array([[True, True], [True, False]])
    x_T = np.array([[[0.3, -1.2], [0.7, 2.0]], [[-0.4, 0.1], [1.5, -0.8]]])
    key = jax.random.key(11)

    def denoise_fn(x_t, t_B):
        return 0.5 * x_t + 0.1 * (t_B.astype(jnp.float32) / T_train)[:, None, None]

    out = get_sampler("ancestral")(
        denoise_fn, schedule, key, jnp.asarray(x_T, jnp.float32),
        jnp.array([2, 1, 0], jnp.int32), prediction=get_prediction("eps"), mask=jnp.asarray(mask))

    x = x_T
    for j, i in enumerate([2, 1, 0]):
        eps = _toy_eps(x, steps_train[i] / T_train)
        x0 = (x - np.sqrt(1 - abar[i]) * eps) / np.sqrt(abar[i])
        x0 = np.where(mask, x0, 0.0)
        z = np.asarray(jax.random.normal(jax.random.fold_in(key, j), x.shape), np.float64)
        x = c1[i] * x0 + c2[i] * x + np.sqrt(var[i]) * z
    assert var[0] == 0 and np.all(x[:, ~mask] == 0)
    # float32 arithmetic: to 1e-6, relative as well for the respaced chain (its x reach ~2 and its
    # betas come from respace's float64 log-SNR path rather than the float32 abar used here).
    np.testing.assert_allclose(np.asarray(out, np.float64), x, rtol=0 if kind == "T3" else 1e-6,
                               atol=1e-6)


def test_general_grid_uses_the_posterior_between_its_points() -> None:
    """ts skipping indices of a full schedule takes the same steps as the respaced schedule."""
    full = get_schedule("cosine", T)
    kept = np.array([0, 125, 250, 375, 499])
    x_T = jax.random.normal(jax.random.key(2), (200, *MU.shape))
    for name, options in [("ancestral", {}), ("ddim", {"eta": 0.5}), ("dpmpp", {}),
                          ("unipc", {"order": 3}), ("dpmpp_3m", {})]:
        sampler = get_sampler(name)
        args = dict(prediction=get_prediction("eps"), **options)
        denoise_fn = exact_denoiser(full, "eps")
        on_full = sampler(denoise_fn, full, jax.random.key(0), x_T,
                          jnp.asarray(kept[::-1], jnp.int32), **args)
        respaced = respace(full, kept)
        ts = jnp.arange(len(kept) - 1, -1, -1, dtype=jnp.int32)
        on_respaced = sampler(denoise_fn, respaced, jax.random.key(0), x_T, ts, **args)
        np.testing.assert_allclose(np.asarray(on_full), np.asarray(on_respaced), atol=2e-4,
                                   err_msg=name)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_mask_and_clip(name: str) -> None:
    """Padded slots come out exactly 0; clip_x0 bounds what the last step returns."""
    full = get_schedule("cosine", 50)
    mask = jnp.array([[True, False], [True, True]])
    x_T = jax.random.normal(jax.random.key(0), (16, 2, 2))

    def run(**kwargs) -> np.ndarray:
        return np.asarray(get_sampler(name)(
            exact_denoiser(full, "eps"), full, jax.random.key(1), x_T, jnp.arange(49, -1, -1),
            prediction=get_prediction("eps"), **kwargs))

    free, out = run(), run(mask=mask, clip_x0=0.25)
    assert np.all(out[:, 0, 1] == 0) and np.all(free[:, 0, 1] != 0)
    assert np.all(np.abs(out) <= 0.25 + 1e-6) and np.abs(free).max() > 1
    # Slot [1, 0] holds x0 ~ N(2, 0.3^2): unclipped it lands far above the bound, clipped at it.
    assert free[:, 1, 0].min() > 1 and np.median(out[:, 1, 0]) == pytest.approx(0.25, abs=1e-6)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_healthy_run_reports_no_non_finite_step(name: str) -> None:
    """The diagnostic checks every float in the carry: the multistep samplers' carried x0_hat,
    lambdas and step sizes stay finite through the warm-up and the last step (h = inf)."""
    full = get_schedule("cosine", 50)
    hit: list[int] = []
    with reporting_non_finite_steps(hit.append):
        out = get_sampler(name)(exact_denoiser(full, "eps"), full, jax.random.key(1),
                                jnp.ones((2, *MU.shape)), jnp.array([49, 30, 0]),
                                prediction=get_prediction("eps"))
        jax.block_until_ready(out)
    jax.effects_barrier()
    assert hit == [] and np.all(np.isfinite(np.asarray(out)))


# ----------------------------------------------------------------------------- guidance


NUM_CLASSES = 3


def toy_apply(variables, x, t, y, train=False):
    """A model whose output depends on the label (the null label included) and on t."""
    assert not train
    scale = variables["params"]["scale"][y]  # [B]
    return x * scale[:, None, None] + t[:, None, None]


TOY_PARAMS = {"scale": jnp.array([1.0, 2.0, 3.0, -0.5])}  # row NUM_CLASSES = the null label


def test_guidance_zero_is_the_conditional_model() -> None:
    x = jax.random.normal(jax.random.key(0), (5, 4, 2))
    y = jnp.array([0, 1, 2, 1, 0], jnp.int32)
    t_B = jnp.full((5,), 100, jnp.int32)
    cond = toy_apply({"params": TOY_PARAMS}, x, t_B / T, y)
    for w in (0.0, jnp.float32(0.0)):  # a Python 0 (one call) and a traced 0 (the guided call)
        out = make_denoise_fn(toy_apply, TOY_PARAMS, y, time_fn=lambda t: t / T, guidance=w,
                              null_label=NUM_CLASSES)(x, t_B)
        np.testing.assert_allclose(np.asarray(out), np.asarray(cond), rtol=1e-6)


def test_guided_output_is_the_formula_in_one_call() -> None:
    x = jax.random.normal(jax.random.key(0), (6, 4, 2))
    y = jnp.array([0, 1, 2, 2, 1, 0], jnp.int32)
    t_B = jnp.full((6,), 321, jnp.int32)
    w = 0.7
    calls = []

    def counting_apply(variables, x, t, y, train=False):
        calls.append(x.shape[0])
        return toy_apply(variables, x, t, y, train)

    out = make_denoise_fn(counting_apply, TOY_PARAMS, y, time_fn=lambda t: t / T, guidance=w,
                          null_label=NUM_CLASSES)(x, t_B)
    assert calls == [12]  # one model call on cond and null rows together
    cond = toy_apply({"params": TOY_PARAMS}, x, t_B / T, y)
    uncond = toy_apply({"params": TOY_PARAMS}, x, t_B / T, jnp.full_like(y, NUM_CLASSES))
    np.testing.assert_allclose(np.asarray(out), np.asarray((1 + w) * cond - w * uncond),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_guiding_the_output_guides_eps(prediction: str) -> None:
    """For v and x0 networks, eps of the guided output = (1 + w) eps_cond - w eps_uncond."""
    key_c, key_u, key_x = jax.random.split(jax.random.key(4), 3)
    out_c = jax.random.normal(key_c, (8, 4, 2))
    out_u = jax.random.normal(key_u, (8, 4, 2))
    x_t = jax.random.normal(key_x, (8, 4, 2))
    alpha_t, sigma_t = jnp.float32(0.6), jnp.float32(0.8)
    to_eps = v_to_eps if prediction == "v" else x0_to_eps
    w = 1.5
    eps_of_guided = to_eps(x_t, guide(out_c, out_u, w), alpha_t, sigma_t)
    guided_eps = (1 + w) * to_eps(x_t, out_c, alpha_t, sigma_t) - w * to_eps(
        x_t, out_u, alpha_t, sigma_t)
    np.testing.assert_allclose(np.asarray(eps_of_guided), np.asarray(guided_eps), atol=1e-5)


def test_registry() -> None:
    assert {"ancestral", "ddim", "dpmpp", "dpmpp_3m", "unipc"} <= set(SAMPLERS)
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("euler")
