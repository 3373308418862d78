"""The fast layer set's hashed dropout (models/ops/dropout.py): the murmur3 finaliser, keep rate,
scaling, independence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.models.ops.dropout import Dropout, fmix32, keep_mask


def fmix32_python(h: int) -> int:
    """murmur3's fmix32 with Python integers, written from the reference C code."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def test_fmix32_is_murmur3s_finaliser():
    values = [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF, 123456789]
    got = np.asarray(fmix32(jnp.asarray(values, jnp.uint32)))
    assert [int(v) for v in got] == [fmix32_python(v) for v in values]
    assert fmix32_python(1) == 0x514E28B7  # a published murmur3 test value


def apply(rate: float, x, key, deterministic: bool = False):
    return Dropout(rate, deterministic=deterministic).apply({}, x, rngs={"dropout": key})


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_keep_rate_and_scaling(rate: float):
    x = jnp.ones((64, 512, 32))
    y = np.asarray(apply(rate, x, jax.random.key(0)))
    kept = y != 0
    n = kept.size
    # Within 5 binomial standard deviations of 1 - rate.
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)


def test_identity_when_deterministic_or_rate_zero_and_zero_at_rate_one():
    x = jax.random.normal(jax.random.key(1), (4, 8, 3))
    np.testing.assert_array_equal(apply(0.3, x, jax.random.key(0), deterministic=True), x)
    np.testing.assert_array_equal(apply(0.0, x, jax.random.key(0)), x)
    np.testing.assert_array_equal(apply(1.0, x, jax.random.key(0)), np.zeros_like(x))


def test_same_key_same_mask_other_key_independent_mask():
    x = jnp.ones((32, 256, 16))
    a = np.asarray(apply(0.5, x, jax.random.key(3))) != 0
    a2 = np.asarray(apply(0.5, x, jax.random.key(3))) != 0
    b = np.asarray(apply(0.5, x, jax.random.key(4))) != 0
    np.testing.assert_array_equal(a, a2)
    # Two independent fair masks agree on half the elements.
    assert abs((a == b).mean() - 0.5) < 5 * 0.5 / np.sqrt(a.size)


def test_neighbouring_elements_rows_and_seeds_are_uncorrelated():
    shape = (64, 128, 64)
    m = np.asarray(keep_mask(jnp.uint32(7), shape, 0.5)).astype(np.float64) - 0.5
    tol = 5 * 0.25 / np.sqrt(m[:, :, 1:].size)  # 5 sd of a mean of products of +-0.5
    for a, b in [
        (m[:, :, :-1], m[:, :, 1:]),  # next channel
        (m[:, :-1], m[:, 1:]),  # next position
        (m[:-1], m[1:]),  # next row
    ]:
        assert abs((a * b).mean()) < tol
    # Consecutive seeds (as fold_in would never give, but a careless caller might).
    m8 = np.asarray(keep_mask(jnp.uint32(8), shape, 0.5)).astype(np.float64) - 0.5
    assert abs((m * m8).mean()) < tol


def test_gradient_is_the_scaled_mask():
    x = jax.random.normal(jax.random.key(2), (8, 64, 4))
    key = jax.random.key(9)
    y, vjp = jax.vjp(lambda v: apply(0.2, v, key), x)
    (g,) = vjp(jnp.ones_like(y))
    np.testing.assert_allclose(np.asarray(g), np.where(np.asarray(y) != 0, 1 / 0.8, 0), rtol=1e-6)


def test_every_row_gets_its_own_mask():
    """Rows are keyed by their index: a row key that ignored it would repeat one mask."""
    whole = np.asarray(jax.jit(keep_mask, static_argnums=(1, 2))(jnp.uint32(11), (6, 10, 3), 0.3))
    assert whole.any() and not whole.all()
    assert len({r.tobytes() for r in whole}) == 6
