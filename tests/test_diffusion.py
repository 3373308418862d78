"""Tests of the noise process: schedules, forward process, parameterisations, losses."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.diffusion import (
    PREDICTIONS,
    SCHEDULES,
    eps_to_x0,
    even_timesteps,
    get_prediction,
    get_schedule,
    masked_mae,
    masked_mse,
    q_sample,
    register_schedule,
    respace,
    v_from_x0_eps,
    x0_to_eps,
)

ALL_SCHEDULES = sorted(SCHEDULES)


def f64(a: jax.Array) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def assert_betas_match_alpha_bar(betas: np.ndarray, alpha_bar: np.ndarray) -> None:
    """abar = cumprod(1 - beta), to the precision float32 storage allows.

    Each beta is checked against 1 - abar_t / abar_{t-1} in absolute terms (the ratio of
    two float32 numbers). In the product, rounding a float32 beta (at most 6e-8) moves
    1 - beta by 6e-8 / (1 - beta) relative, which is large for beta near 1; those
    relative errors add up along the product, plus 1e-6 for abar's own rounding.
    """
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])
    np.testing.assert_allclose(betas, 1 - alpha_bar / alpha_bar_prev, rtol=0, atol=3e-7)
    rel_err = np.abs(np.cumprod(1 - betas) / alpha_bar - 1)
    assert np.all(rel_err <= 1e-6 + np.cumsum(6e-8 / (1 - betas))), rel_err.max()


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("num_steps", [500, 1000])
@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_schedule_invariants(name: str, num_steps: int) -> None:
    schedule = get_schedule(name, num_steps)
    assert schedule.num_steps == num_steps
    for field in ("betas", "alpha_bar", "alpha", "sigma", "logsnr"):
        arr = getattr(schedule, field)
        assert arr.shape == (num_steps,) and arr.dtype == jnp.float32, field
    alpha_t, sigma_t = f64(schedule.alpha), f64(schedule.sigma)
    np.testing.assert_allclose(alpha_t**2 + sigma_t**2, 1.0, atol=1e-6)
    betas, alpha_bar = f64(schedule.betas), f64(schedule.alpha_bar)
    assert np.all(betas > 0) and np.all(betas <= np.float32(0.999))
    assert np.all(alpha_bar > 0) and np.all(alpha_bar < 1)
    assert np.all(np.diff(alpha_bar) < 0)
    assert np.all(np.diff(f64(schedule.logsnr)) < 0)
    assert_betas_match_alpha_bar(betas, alpha_bar)
    np.testing.assert_allclose(
        f64(schedule.logsnr), np.log(alpha_t**2 / sigma_t**2), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(np.asarray(schedule.timesteps), np.arange(num_steps))


def test_cosine_matches_design_formula() -> None:
    """DESIGN 1.2: abar(t) = cos^2(((t/T)+s)/(1+s) pi/2),
    beta_t = min(1 - abar(t+1)/abar(t), 0.999)."""
    num_steps, s = 500, 0.008
    f = np.cos(((np.arange(num_steps + 1) / num_steps) + s) / (1 + s) * math.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    schedule = get_schedule("cosine", num_steps)
    np.testing.assert_allclose(f64(schedule.betas), betas, rtol=0, atol=1e-7)
    np.testing.assert_allclose(f64(schedule.alpha_bar), np.cumprod(1 - betas), rtol=1e-6)
    assert get_schedule("cosine", 500).betas[-1] == np.float32(0.999)  # the clip bites


def test_linear_endpoints_scale_with_num_steps() -> None:
    betas = f64(get_schedule("linear", 1000).betas)
    assert betas[0] == pytest.approx(1e-4, rel=1e-6)
    assert betas[-1] == pytest.approx(0.02, rel=1e-6)
    np.testing.assert_allclose(np.diff(betas), np.diff(betas)[0], rtol=1e-3)
    betas_500 = f64(get_schedule("linear", 500).betas)
    assert betas_500[0] == pytest.approx(2e-4, rel=1e-6)
    assert betas_500[-1] == pytest.approx(0.04, rel=1e-6)


def test_sigmoid_matches_chen_formula() -> None:
    """abar_t = gamma((t+1)/T) with Chen 2023's sigmoid gamma, wherever the beta clip is idle."""
    num_steps, start, end, tau = 1000, -3.0, 3.0, 1.0

    def sig(z):
        return 1 / (1 + np.exp(-z))

    u = (np.arange(num_steps) + 1) / num_steps
    gamma = (sig(end / tau) - sig((u * (end - start) + start) / tau)) / (
        sig(end / tau) - sig(start / tau)
    )
    alpha_bar = f64(get_schedule("sigmoid", num_steps).alpha_bar)
    np.testing.assert_allclose(alpha_bar[:-1], gamma[:-1], rtol=1e-5)
    # tau is a real knob: a larger tau flattens the curve, so abar differs mid-way.
    other = f64(get_schedule("sigmoid", num_steps, tau=2.0).alpha_bar)
    assert abs(other[num_steps // 4] - alpha_bar[num_steps // 4]) > 1e-2


def test_registry_adds_a_schedule_and_rejects_unknown_names() -> None:
    @register_schedule("constant_test")
    def constant(num_steps: int, beta: float = 0.01) -> np.ndarray:
        return np.full(num_steps, beta)

    try:
        schedule = get_schedule("constant_test", 10, beta=0.02)
        np.testing.assert_allclose(f64(schedule.alpha_bar), 0.98 ** np.arange(1, 11), rtol=1e-6)
        with pytest.raises(ValueError, match="already registered"):
            register_schedule("constant_test")(constant)
    finally:
        SCHEDULES.pop("constant_test")
    with pytest.raises(ValueError, match="cosine"):
        get_schedule("no_such_schedule", 10)


def test_schedule_is_a_pytree_usable_under_jit() -> None:
    schedule = get_schedule("cosine", 500)
    t = jnp.array([0, 7, 499])
    as_argument = jax.jit(lambda s, t: s.alpha_sigma(t))(schedule, t)
    as_constant = jax.jit(lambda t: schedule.alpha_sigma(t))(t)
    for got in (as_argument, as_constant):
        np.testing.assert_array_equal(got[0], schedule.alpha[t])
        np.testing.assert_array_equal(got[1], schedule.sigma[t])
    leaves = jax.tree_util.tree_leaves(schedule)
    assert len(leaves) >= 5 and all(isinstance(leaf, jax.Array) for leaf in leaves)


def test_alpha_sigma_gathers_any_shape_and_prev_starts_clean() -> None:
    schedule = get_schedule("cosine", 100)
    t = jnp.array([[0, 1], [50, 99]])
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    assert alpha_t.shape == sigma_t.shape == (2, 2)
    np.testing.assert_array_equal(alpha_t[1, 0], schedule.alpha[50])
    alpha_prev, sigma_prev = schedule.alpha_sigma_prev(t)
    assert alpha_prev[0, 0] == 1 and sigma_prev[0, 0] == 0
    np.testing.assert_array_equal(alpha_prev[1], schedule.alpha[jnp.array([49, 98])])
    np.testing.assert_array_equal(sigma_prev[0, 1], schedule.sigma[0])


# ----------------------------------------------------------------------------- posterior


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_posterior_matches_ddpm_formulas(name: str) -> None:
    schedule = get_schedule(name, 500)
    betas, alpha_bar = f64(schedule.betas), f64(schedule.alpha_bar)
    t = 123
    beta_t, abar_t, abar_prev = betas[t], alpha_bar[t], alpha_bar[t - 1]
    c1, c2, var, log_var = (f64(a) for a in schedule.posterior(jnp.array(t)))
    assert c1 == pytest.approx(beta_t * math.sqrt(abar_prev) / (1 - abar_t), rel=1e-5)
    assert c2 == pytest.approx((1 - abar_prev) * math.sqrt(1 - beta_t) / (1 - abar_t), rel=1e-5)
    assert var == pytest.approx(beta_t * (1 - abar_prev) / (1 - abar_t), rel=1e-5)
    assert log_var == pytest.approx(math.log(var), abs=1e-5)
    c1_0, c2_0, var_0, log_var_0 = (f64(a) for a in schedule.posterior(jnp.array(0)))
    assert (c1_0, c2_0, var_0) == (pytest.approx(1.0, abs=1e-6), 0.0, 0.0)
    assert log_var_0 == f64(schedule.posterior_log_var[1])  # improved-DDPM clip


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_posterior_marginalises_to_q_of_previous_step(name: str) -> None:
    """Drawing x_t ~ q(x_t|x0), then x_{t-1} ~ q(x_{t-1}|x_t,x0) must give q(x_{t-1}|x0)."""
    schedule = get_schedule(name, 500)
    t = jnp.arange(1, 500)
    c1, c2, var, _ = (f64(a) for a in schedule.posterior(t))
    alpha_t, sigma_t = (f64(a) for a in schedule.alpha_sigma(t))
    alpha_prev, sigma_prev = (f64(a) for a in schedule.alpha_sigma(t - 1))
    np.testing.assert_allclose(c1 + c2 * alpha_t, alpha_prev, rtol=1e-5)
    np.testing.assert_allclose(c2**2 * sigma_t**2 + var, sigma_prev**2, rtol=1e-5)


# ----------------------------------------------------------------------------- respacing


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_respace_keeping_all_steps_is_the_identity(name: str) -> None:
    schedule = get_schedule(name, 500)
    same = respace(schedule, np.arange(500))
    np.testing.assert_array_equal(np.asarray(same.timesteps), np.arange(500))
    np.testing.assert_allclose(f64(same.alpha_bar), f64(schedule.alpha_bar), rtol=1e-6)
    # Betas come back from float32 abar: relative 1e-5 where small, 2e-7 absolute elsewhere.
    np.testing.assert_allclose(f64(same.betas), f64(schedule.betas), rtol=1e-5, atol=2e-7)
    np.testing.assert_allclose(
        f64(same.posterior_var), f64(schedule.posterior_var), rtol=1e-5, atol=2e-7
    )


@pytest.mark.parametrize("name", ALL_SCHEDULES)
def test_respace_to_25_steps(name: str) -> None:
    schedule = get_schedule(name, 500)
    keep = even_timesteps(500, 25)
    assert keep[0] == 0 and keep[-1] == 499 and len(set(keep.tolist())) == 25
    short = respace(schedule, keep)
    assert short.num_steps == 25
    np.testing.assert_array_equal(np.asarray(short.timesteps), keep)
    np.testing.assert_allclose(f64(short.alpha_bar), f64(schedule.alpha_bar)[keep], rtol=1e-6)
    assert_betas_match_alpha_bar(f64(short.betas), f64(short.alpha_bar))
    # Respacing a respaced schedule still reports steps of the original grid.
    shorter = respace(short, np.array([0, 12, 24]))
    np.testing.assert_array_equal(np.asarray(shorter.timesteps), keep[[0, 12, 24]])


def test_respace_rejects_bad_timesteps() -> None:
    schedule = get_schedule("cosine", 50)
    for bad in (np.array([3, 2]), np.array([0, 50]), np.array([-1, 4]), np.array([], int)):
        with pytest.raises(ValueError):
            respace(schedule, bad)


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("t", [0, 100, 250, 499])
def test_q_sample_moments(t: int) -> None:
    """Mean alpha_t x0 and variance sigma_t^2, within 5 standard errors of 200k draws."""
    schedule = get_schedule("cosine", 500)
    n = 200_000
    x0_GK = jnp.array([[1.5, -2.0], [0.3, 0.0]])
    x0 = jnp.broadcast_to(x0_GK, (n, 2, 2))
    eps = jax.random.normal(jax.random.key(t), x0.shape)
    x_t = q_sample(schedule, x0, jnp.full((n,), t), eps)
    alpha_t, sigma_t = (float(a) for a in schedule.alpha_sigma(jnp.array(t)))
    mean, var = f64(x_t).mean(axis=0), f64(x_t).var(axis=0)
    np.testing.assert_allclose(mean, alpha_t * f64(x0_GK), rtol=0, atol=5 * sigma_t / math.sqrt(n))
    np.testing.assert_allclose(var, sigma_t**2, rtol=5 * math.sqrt(2 / n))


def test_q_sample_uses_each_examples_own_step_and_keeps_dtype() -> None:
    schedule = get_schedule("cosine", 500)
    x0 = jnp.ones((3, 4, 8))
    eps = jnp.full((3, 4, 8), 2.0)
    t = jnp.array([0, 10, 400])
    x_t = jax.jit(q_sample)(schedule, x0, t, eps)
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    np.testing.assert_allclose(x_t[:, 0, 0], alpha_t + 2 * sigma_t, rtol=1e-6)
    assert q_sample(schedule, x0.astype(jnp.bfloat16), t, eps.astype(jnp.bfloat16)).dtype == (
        jnp.bfloat16
    )


# ----------------------------------------------------------------------------- predictions


ROUND_TRIP_STEPS = [0, 1, 250, 498, 499]


@pytest.mark.parametrize("name", sorted(PREDICTIONS))
def test_prediction_round_trip_float64(name: str) -> None:
    """to_x0_eps(target(x0, eps)) == (x0, eps) at every t, the ends included (x64 math)."""
    with jax.enable_x64(True):
        schedule = get_schedule("cosine", 500)
        prediction = get_prediction(name)
        t = jnp.array(ROUND_TRIP_STEPS)
        k1, k2 = jax.random.split(jax.random.key(0))
        x0 = jax.random.normal(k1, (len(ROUND_TRIP_STEPS), 16, 8), jnp.float64)
        eps = jax.random.normal(k2, x0.shape, jnp.float64)
        alpha_t, sigma_t = schedule.alpha_sigma(t)
        x_t = q_sample(schedule, x0, t, eps)
        out = prediction.target(x0, eps, alpha_t, sigma_t)
        x0_hat, eps_hat = prediction.to_x0_eps(out, x_t, alpha_t, sigma_t)
        np.testing.assert_allclose(x0_hat, x0, rtol=0, atol=1e-5)
        np.testing.assert_allclose(eps_hat, eps, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(PREDICTIONS))
def test_prediction_round_trip_float32_where_well_conditioned(name: str) -> None:
    """In float32 the same holds to 1e-5 wherever alpha_t and sigma_t are not tiny.

    At the ends, eps -> x0 divides by alpha_t ~ 1e-4 (and x0 -> eps by sigma_t ~ 1e-2):
    float32 rounding of x_t is amplified by design, hence the x64 test above.
    """
    schedule = get_schedule("cosine", 500)
    prediction = get_prediction(name)
    t = jnp.array([100, 250, 400])
    k1, k2 = jax.random.split(jax.random.key(1))
    x0 = jax.random.normal(k1, (3, 16, 8))
    eps = jax.random.normal(k2, x0.shape)
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    x_t = q_sample(schedule, x0, t, eps)
    out = prediction.target(x0, eps, alpha_t, sigma_t)
    x0_hat, eps_hat = jax.jit(prediction.to_x0_eps)(out, x_t, alpha_t, sigma_t)
    np.testing.assert_allclose(x0_hat, x0, rtol=0, atol=1e-5)
    np.testing.assert_allclose(eps_hat, eps, rtol=0, atol=1e-5)
    bf16 = prediction.to_x0_eps(
        out.astype(jnp.bfloat16), x_t.astype(jnp.bfloat16), alpha_t, sigma_t
    )
    assert bf16[0].dtype == bf16[1].dtype == jnp.bfloat16


def test_prediction_targets_are_the_named_quantities() -> None:
    """eps and x0 targets are themselves;
    v = alpha_t eps - sigma_t x0 = (alpha_t x_t - x0) / sigma_t."""
    schedule = get_schedule("cosine", 500)
    t = jnp.array([30, 300])
    alpha_t, sigma_t = schedule.alpha_sigma(t)
    x0 = jnp.arange(2 * 3 * 2, dtype=jnp.float32).reshape(2, 3, 2) / 7
    eps = jnp.cos(x0 * 5)
    x_t = q_sample(schedule, x0, t, eps)
    np.testing.assert_array_equal(get_prediction("eps").target(x0, eps, alpha_t, sigma_t), eps)
    np.testing.assert_array_equal(get_prediction("x0").target(x0, eps, alpha_t, sigma_t), x0)
    v = get_prediction("v").target(x0, eps, alpha_t, sigma_t)
    a, s = alpha_t[:, None, None], sigma_t[:, None, None]
    np.testing.assert_allclose(v, a * eps - s * x0, rtol=1e-6)
    np.testing.assert_allclose(v, (a * x_t - x0) / s, atol=1e-5)
    np.testing.assert_allclose(v_from_x0_eps(x0, eps, alpha_t, sigma_t), v, rtol=1e-6)
    np.testing.assert_allclose(eps_to_x0(x_t, eps, alpha_t, sigma_t), x0, atol=1e-5)
    np.testing.assert_allclose(x0_to_eps(x_t, x0, alpha_t, sigma_t), eps, atol=1e-5)
    with pytest.raises(ValueError, match="eps"):
        get_prediction("score")


# ----------------------------------------------------------------------------- losses


MASK_GK = jnp.array([[True, False], [True, True]])


def test_masked_mse_hand_computed() -> None:
    out = jnp.array([[[1.0, 9.0], [2.0, 3.0]], [[0.0, -9.0], [1.0, 1.0]]])
    target = jnp.array([[[0.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [1.0, 0.0]]])
    # real squared errors: example 0: 1, 4, 4; example 1: 4, 0, 1 -> 14 over B * 3 = 6 slots.
    assert float(masked_mse(out, target, MASK_GK)) == pytest.approx(14 / 6, rel=1e-6)
    # abs errors: 1, 2, 2; 2, 0, 1 -> 8 / 6.
    assert float(masked_mae(out, target, MASK_GK)) == pytest.approx(8 / 6, rel=1e-6)
    # per-example weights multiply each example's mean: (9/3 * 2 + 5/3 * 0.5) / 2.
    weighted = masked_mse(out, target, MASK_GK, weights=jnp.array([2.0, 0.5]))
    assert float(weighted) == pytest.approx((3 * 2 + 5 / 3 * 0.5) / 2, rel=1e-6)


def test_masked_loss_ignores_padded_slots_value_and_gradient() -> None:
    k1, k2 = jax.random.split(jax.random.key(2))
    out = jax.random.normal(k1, (4, 2, 2))
    target = jax.random.normal(k2, (4, 2, 2))
    padded = ~MASK_GK
    garbage = jnp.where(padded, jnp.array([jnp.inf, jnp.nan, 1e30, -5.0])[:, None, None], out)
    for loss_fn in (masked_mse, masked_mae):
        assert float(loss_fn(garbage, target, MASK_GK)) == float(loss_fn(out, target, MASK_GK))
        grad = jax.grad(loss_fn)(garbage, target, MASK_GK)
        assert np.all(np.asarray(grad)[:, padded] == 0.0)
        assert np.all(np.asarray(grad)[:, MASK_GK] != 0.0)
    grad = jax.grad(masked_mse)(out, target, MASK_GK)
    expected = 2 * (out - target) / (4 * int(MASK_GK.sum()))
    np.testing.assert_allclose(grad[:, MASK_GK], expected[:, MASK_GK], rtol=1e-6)


def test_masked_mse_is_float32_for_bf16_inputs_and_jits() -> None:
    k1, k2 = jax.random.split(jax.random.key(3))
    out = jax.random.normal(k1, (8, 64, 8))
    target = jax.random.normal(k2, (8, 64, 8))
    mask = jnp.arange(64 * 8).reshape(64, 8) % 3 != 0
    reference = masked_mse(out.astype(jnp.bfloat16).astype(jnp.float32), target, mask)
    loss = jax.jit(masked_mse)(out.astype(jnp.bfloat16), target, mask)
    assert loss.dtype == jnp.float32 and loss.shape == ()
    assert float(loss) == pytest.approx(float(reference), rel=1e-5)
