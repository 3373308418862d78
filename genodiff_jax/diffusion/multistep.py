"""The Gaussian process's deterministic multistep ODE solvers, in lambda = logsnr / 2: they carry
their earlier x0_hat through the scan instead of calling the model again. `dpmpp`
(DPM-Solver++(2M), second order), `dpmpp_3m` (third order) and `unipc` (UniPC-p, order p + 1 for
option `order` p in {1, 2, 3}). All three warm up at lower order on their first steps and end with
x0_hat (`lower_order_final` lowers the new ones' order on their last steps too). They are
registered in `gaussian_samplers.SAMPLERS` and follow its conventions (its module docstring).
"""


from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.diffusion.gaussian_samplers import (
    DenoiseFn,
    predict_x0_eps,
    register_sampler,
    scan_grid,
    step_coefs,
)
from genodiff_jax.diffusion.predictions import Prediction
from genodiff_jax.diffusion.schedules import Schedule


@register_sampler("dpmpp")
def dpmpp_2m(
    denoise_fn: DenoiseFn, schedule: Schedule, key: jax.Array, x_T: jax.Array, ts: jax.Array, *,
    prediction: Prediction, mask: jax.Array | None = None, clip_x0: float | None = None,
) -> jax.Array:
    """DPM-Solver++(2M) (Lu et al. 2022): multistep, second order in lambda = log(alpha/sigma).

    With h = lambda_s - lambda_t: x_s = (sigma_s / sigma_t) x_t - alpha_s expm1(-h) D, where
    D = x0_hat on the first step (first order) and, after it, D = (1 + 1/(2r)) x0_hat - 1/(2r)
    x0_hat_prev with r = h_prev / h. The last step, to the clean end (h = inf), is first order
    (lower_order_final, the only finite choice there): it returns x0_hat. Deterministic: `key` is
    unused and kept for the common signature.
    """
    del key

    def step(carry, xs):
        x_t, x0_prev, h_prev = carry
        j, t, s = xs
        c = step_coefs(schedule, t, s)
        x0_hat, _ = predict_x0_eps(denoise_fn, prediction, x_t, c, mask=mask, clip_x0=clip_x0)
        h = 0.5 * (c.logsnr_s - c.logsnr_t)  # logsnr = 2 lambda
        second_order = (j > 0) & (s >= 0)
        # where() before dividing would still evaluate h / 0 at j = 0;
        # the unselected inf is dropped.
        k = jnp.where(second_order, h / (2.0 * jnp.where(second_order, h_prev, 1.0)), 0.0)
        d = x0_hat + k * (x0_hat - x0_prev)
        x_s = jnp.where(s >= 0, (c.sigma_s / c.sigma_t) * x_t - c.alpha_s * jnp.expm1(-h) * d,
                        x0_hat)
        # The carry stays finite (h = inf on the last step is not), or the non-finite-step
        # diagnostic would flag every run's last step.
        return (x_s.astype(x_t.dtype), x0_hat, jnp.where(s >= 0, h, 0.0)), None

    init = (x_T, jnp.zeros_like(x_T), jnp.zeros((), jnp.float32))
    x_0, _, _ = scan_grid(step, init, ts)
    return x_0


# ------------------------------------------------------------------- higher-order multistep


def _check_multistep_options(name: str, order: int, lower_order_final: bool) -> None:
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or order not in (1, 2, 3):
        raise ValueError(f"sampler {name!r}: order must be 1, 2 or 3, got {order!r}")
    if not isinstance(lower_order_final, bool | np.bool_):
        raise ValueError(f"sampler {name!r}: lower_order_final must be True or False, "
                         f"got {lower_order_final!r}")


def _step_order(order: int, j: jax.Array, num_steps: int, lower_order_final: bool) -> jax.Array:
    """The order of step j (of num_steps) of an `order`-step multistep solver: at most j + 1 (its
    warm-up: step j has j earlier x0_hat) and, with lower_order_final, at most the steps left."""
    p = jnp.minimum(order, j + 1)
    if lower_order_final:
        p = jnp.minimum(p, num_steps - j)
    return jnp.maximum(p, 1)


def _phis(z: jax.Array, n: int) -> list[jax.Array]:
    """[phi_1(z), ..., phi_n(z)] with phi_k(z) = sum_m z^m / (m + k)!, the exponential integrator's
    weights (phi_1 = expm1(z) / z, phi_{k+1} = (phi_k - 1/k!) / z).

    The recurrence cancels for small |z| (phi_k gets k - 1 factors 1/z on float32 rounding: at
    |z| = 0.005, phi_4 would have no correct digit), so below |z| = 1 the series is summed instead
    (13 terms; the first left out is below 1/14!). Both ways phi_1..phi_4 are within 5e-7
    relative of float64 for z <= 0.
    """
    small = jnp.abs(z) < 1.0
    z_ser = jnp.where(small, z, 0.0)
    z_rec = jnp.where(small, -1.0, z)  # both branches stay finite; where() picks one
    phis, phi_rec = [], jnp.expm1(z_rec) / z_rec
    for k in range(1, n + 1):
        series = jnp.zeros_like(z_ser)
        for m in range(12, -1, -1):
            series = series * z_ser + 1.0 / math.factorial(m + k)
        phis.append(jnp.where(small, series, phi_rec))
        phi_rec = (phi_rec - 1.0 / math.factorial(k)) / z_rec
    return phis


def _solve_moments(nodes: list[jax.Array], b: list[jax.Array]) -> list[jax.Array]:
    """rho with sum_k rho_k nodes_k^i = b_i for i < len(nodes) (UniPC's R rho = b), in closed
    form: rho_k = sum_i [r^i] l_k(r) b_i for the Lagrange basis l_k(r) = prod_{m != k}
    (r - r_m) / (r_k - r_m), since sum_k l_k(r) r_k^i = r^i below len(nodes)."""
    rho = []
    for k, r_k in enumerate(nodes):
        poly, denom = [1.0], 1.0  # prod_{m != k} (r - r_m), lowest power first
        for m, r_m in enumerate(nodes):
            if m != k:
                poly = [hi - r_m * lo for hi, lo in zip([0.0] + poly, poly + [0.0])]
                denom = denom * (r_k - r_m)
        rho.append(sum(c * b_i for c, b_i in zip(poly, b)) / denom)
    return rho


def _unipc_update(x: jax.Array, m0: jax.Array, hist: list[tuple[jax.Array, jax.Array]],
                  h: jax.Array, sigma_ratio: jax.Array, alpha_to: jax.Array, p: jax.Array,
                  m_new: jax.Array | None = None) -> jax.Array:
    """One UniP step of order p (m_new None) or UniC step of order p (m_new: x0_hat at the new
    point) from x, where x0_hat is m0, to the point h further in lambda; bh2, data prediction.

    x_new = (sigma_new / sigma) x + alpha_new A (m0 + sum_k rho_k D1_k), A = -expm1(-h), with
    D1_k = (m_k - m0) / r_k for the earlier points (m_k, lambda_k - lambda) in `hist`,
    r_k = (lambda_k - lambda) / h, and for UniC also r = 1, D1 = m_new - m0. rho solves
    R rho = b, R_ik = r_k^i, b_i = i! phi_{i+1}(-h) / phi_1(-h) (the reference's
    h phi_k i! / B(h) with B(h) = expm1(-h)), over the first p - 1 points (UniP) or those and the
    new one (UniC); UniP-2 and UniC-1 take rho = 1/2 as the reference does (b_1 -> 1/2 as h -> 0).
    """
    K = len(hist)  # static; p <= K + 1
    phis = _phis(-h, K + 2)
    b = [math.factorial(i) * phis[i] / phis[0] for i in range(1, K + 2)]
    # Unused points get distinct negative stand-ins (a valid r_k is below r_{k-1} < 0), so the
    # unselected systems stay regular and nothing divides by zero.
    rks, prev = [], jnp.float32(0.0)
    for k, (_, dlam) in enumerate(hist, start=1):
        prev = jnp.where(k < p, dlam / h, prev - 1.0)
        rks.append(prev)
    d1s = [(m_k - m0) / r_k for (m_k, _), r_k in zip(hist, rks)]
    zero, half = jnp.float32(0.0), jnp.float32(0.5)
    if m_new is None:  # rho for each order 1..K+1 over D1_1..D1_K
        by_order = [[zero] * K, [half] + [zero] * (K - 1)][:K + 1]
        by_order += [_solve_moments(rks[:q - 1], b[:q - 1]) + [zero] * (K + 1 - q)
                     for q in range(3, K + 2)]
    else:  # ... and over D1_1..D1_K, m_new - m0
        d1s.append(m_new - m0)
        by_order = [[zero] * K + [half]]
        for q in range(2, K + 2):
            rho = _solve_moments(rks[:q - 1] + [jnp.float32(1.0)], b[:q])
            by_order.append(rho[:-1] + [zero] * (K + 1 - q) + rho[-1:])
    d = m0
    if d1s:
        rho = jnp.stack([jnp.stack(r) for r in by_order])[p - 1]
        for k, d1 in enumerate(d1s):
            d = d + rho[k] * d1
    return sigma_ratio * x - alpha_to * jnp.expm1(-h) * d


@register_sampler("unipc")
def unipc(
    denoise_fn: DenoiseFn, schedule: Schedule, key: jax.Array, x_T: jax.Array, ts: jax.Array, *,
    prediction: Prediction, mask: jax.Array | None = None, clip_x0: float | None = None,
    order: int = 2, lower_order_final: bool = True,
) -> jax.Array:
    """UniPC (Zhao et al. 2023): multistep UniP predictor + UniC corrector, data prediction, B(h)
    = expm1(h) ("bh2"), as diffusers' UniPCMultistepScheduler.

    Step j evaluates x0_hat at its point, first corrects that point (UniC: step j - 1 redone with
    the new x0_hat too; the model is not called again, so S calls for S steps, and the new x0_hat
    is kept as read at the uncorrected point, as the reference does), then predicts the next one
    (UniP, see `_unipc_update`). UniPC-p has order p + 1 thanks to the corrector (measured on an
    evenly spaced lambda grid in tests/test_sampling.py; p = 3 reaches 4 only slowly). `order` p in
    {1, 2, 3}: 2 by default, which the reference recommends for guided sampling (higher orders
    extrapolate the guided x0_hat further and go unstable at large guidance), 3 for unguided. The
    first steps warm up at order j + 1; lower_order_final lowers step j's order to the steps left
    (the last two steps at orders 1 and 2). The last step, to the clean end (h = inf), is first
    order whatever the options (the only finite choice): it returns x0_hat. Deterministic: `key`
    is unused.
    """
    del key
    _check_multistep_options("unipc", order, lower_order_final)
    num_steps = jnp.shape(ts)[0]

    def step(carry, xs):
        # x0_hat and lambda at the `order` previous points (latest first), the corrected sample
        # and sigma at the previous point.
        x_t, ms, lams, x_prev, sigma_prev = carry
        j, t, s = xs
        c = step_coefs(schedule, t, s)
        m0, _ = predict_x0_eps(denoise_fn, prediction, x_t, c, mask=mask, clip_x0=clip_x0)
        m0 = m0.astype(x_t.dtype)
        lam0 = 0.5 * c.logsnr_t
        # UniC: step j - 1 again, from x_prev, now with x0_hat at its end (none before step 0).
        first = j == 0
        h_prev = jnp.where(first, 1.0, lam0 - lams[0])
        p_prev = _step_order(order, j - 1, num_steps, lower_order_final)
        corrected = _unipc_update(
            x_prev, ms[0], [(m, lam - lams[0]) for m, lam in zip(ms[1:], lams[1:])], h_prev,
            c.sigma_t / sigma_prev, c.alpha_t, p_prev, m_new=m0)
        x_t = jnp.where(first, x_t, corrected.astype(x_t.dtype))
        # UniP: step j.
        final = s < 0
        h = jnp.where(final, 1.0, 0.5 * (c.logsnr_s - c.logsnr_t))
        p = _step_order(order, j, num_steps, lower_order_final)
        x_s = _unipc_update(x_t, m0, [(m, lam - lam0) for m, lam in zip(ms[:-1], lams[:-1])], h,
                            c.sigma_s / c.sigma_t, c.alpha_s, p)
        x_s = jnp.where(final, m0, x_s)
        return (x_s.astype(x_t.dtype), (m0,) + ms[:-1], (lam0,) + lams[:-1], x_t, c.sigma_t), None

    zero = jnp.zeros((), jnp.float32)
    init = (x_T, (jnp.zeros_like(x_T),) * order, (zero,) * order, x_T, jnp.ones((), jnp.float32))
    return scan_grid(step, init, ts)[0]


@register_sampler("dpmpp_3m")
def dpmpp_3m(
    denoise_fn: DenoiseFn, schedule: Schedule, key: jax.Array, x_T: jax.Array, ts: jax.Array, *,
    prediction: Prediction, mask: jax.Array | None = None, clip_x0: float | None = None,
    lower_order_final: bool = True,
) -> jax.Array:
    """DPM-Solver++(3M) (Lu et al. 2022): multistep, third order in lambda = log(alpha/sigma).

    With h = lambda_s - lambda_t, the two previous steps h_1, h_2, r_i = h_i / h and the last
    three x0_hat m0, m1, m2: D1_0 = (m0 - m1) / r_1, D1_1 = (m1 - m2) / r_2, D2 = (D1_0 - D1_1) /
    (r_1 + r_2) (the quadratic through them is m0 + (D1_0 + r_1 D2) u + D2 u^2 in u = (lambda -
    lambda_t) / h), and x_s = (sigma_s / sigma_t) x_t + alpha_s (A m0 + h phi_2(-h) (D1_0 + r_1 D2)
    + 2 h phi_3(-h) D2), A = -expm1(-h): that quadratic integrated exactly against e^(lambda -
    lambda_s), as DPM-Solver++ integrates x0_hat.
    The reference codes (dpm-solver, diffusers' DPMSolverMultistepScheduler, k-diffusion's
    sample_dpmpp_3m_sde) weight D2 by h phi_3(-h), half of this; that leaves an O(h^3) local
    error, i.e. second order (tests/test_sampling.py measures both). Step 0 is first order, step 1
    second order (as `dpmpp`: D = m0 + (m0 - m1) / (2 r_1)); lower_order_final lowers step j's
    order to the steps left (the last two at orders 1 and 2; diffusers does so only below 15
    steps). The last step, to the clean end (h = inf), is first order whatever the option (the
    only finite choice): it returns x0_hat. Deterministic: `key` is unused.
    """
    del key
    _check_multistep_options("dpmpp_3m", 3, lower_order_final)
    num_steps = jnp.shape(ts)[0]

    def step(carry, xs):
        x_t, m1, m2, h1, h2 = carry  # x0_hat at the two previous points, the two last h
        j, t, s = xs
        c = step_coefs(schedule, t, s)
        m0, _ = predict_x0_eps(denoise_fn, prediction, x_t, c, mask=mask, clip_x0=clip_x0)
        m0 = m0.astype(x_t.dtype)
        final = s < 0
        h = jnp.where(final, 1.0, 0.5 * (c.logsnr_s - c.logsnr_t))
        p = _step_order(3, j, num_steps, lower_order_final)
        # r = 1 stands in where a previous step does not exist or is not used.
        r1 = jnp.where(p >= 2, h1, h) / h
        r2 = jnp.where(p >= 3, h2, h) / h
        d1_0 = (m0 - m1) / r1
        d1_1 = (m1 - m2) / r2
        d2 = (d1_0 - d1_1) / (r1 + r2)
        _, phi_2, phi_3 = _phis(-h, 3)
        A = -jnp.expm1(-h)
        zero = jnp.zeros_like(A)
        # x_s = (sigma_s / sigma_t) x_t + alpha_s (A m0 + k_1 D1_0 + k_2 D2), k by order.
        k = jnp.stack([jnp.stack([zero, zero]), jnp.stack([0.5 * A, zero]),
                       jnp.stack([h * phi_2, h * phi_2 * r1 + 2.0 * h * phi_3])])[p - 1]
        x_s = (c.sigma_s / c.sigma_t) * x_t + c.alpha_s * (A * m0 + k[0] * d1_0 + k[1] * d2)
        x_s = jnp.where(final, m0, x_s)
        return (x_s.astype(x_t.dtype), m0, m1, h, h1), None

    zero = jnp.zeros((), jnp.float32)
    init = (x_T, jnp.zeros_like(x_T), jnp.zeros_like(x_T), zero, zero)
    return scan_grid(step, init, ts)[0]
