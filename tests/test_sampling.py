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
# over the big last steps of an evenly spaced grid).
ALLOWANCE = {
    ("ancestral", 500): (0.03, 0.02), ("ancestral", 25): (0.36, 0.02),
    ("ddim0", 500): (0.03, 0.02), ("ddim0", 25): (0.20, 0.02),
    ("ddim1", 500): (0.03, 0.02), ("ddim1", 25): (0.36, 0.02),
    ("dpmpp", 500): (0.03, 0.02), ("dpmpp", 25): (0.26, 0.02),
}
CASES = {"ancestral": ("ancestral", {}), "ddim0": ("ddim", {"eta": 0.0}),
         "ddim1": ("ddim", {"eta": 1.0}), "dpmpp": ("dpmpp", {})}


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
                                          ("dpmpp", {})])
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
    for name, options in [("ddim", {"eta": 0.0}), ("dpmpp", {})]:
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
    for name, options in [("ancestral", {}), ("ddim", {"eta": 0.5}), ("dpmpp", {})]:
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
    assert {"ancestral", "ddim", "dpmpp"} <= set(SAMPLERS)
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("euler")
