"""The layer sets (models/ops): the fast layers against flax's, and the sets as seen by a model."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.models import build_model, cast_weights
from genodiff_jax.models.embeddings import multi_head_attention
from genodiff_jax.models.ops import LAYER_SETS
from genodiff_jax.models.ops.attention import attention
from genodiff_jax.models.ops.dense import Dense


def test_the_sets_and_an_unknown_name():
    assert {"fast", "stock"} <= set(LAYER_SETS)
    stock = LAYER_SETS["stock"]
    assert stock.Dense is nn.Dense and stock.Dropout is nn.Dropout
    assert stock.attention is jax.nn.dot_product_attention
    assert issubclass(stock.GroupNorm, nn.GroupNorm) and not stock.compiler_options
    model = build_model("mlp_unet", num_classes=2, widths=(16,), bottleneck=8, num_groups=4,
                        ops="nope")
    with pytest.raises(ValueError, match="unknown layer set 'nope'"):
        model.init(jax.random.key(0), jnp.zeros((1, 4, 2)), jnp.zeros(1), jnp.zeros(1, jnp.int32))


@pytest.mark.parametrize("ops", ["fast", "stock"])
@pytest.mark.parametrize("shape", [(4, 64), (3, 40, 64), (2, 6, 5, 32)])
@pytest.mark.parametrize("film", [False, True])
def test_group_norm_matches_flax_values_and_gradients(ops: str, shape: tuple[int, ...], film: bool):
    """Each set's GroupNorm equals flax's GroupNorm + FiLM + SiLU written out, grads included
    (the fast one has a hand-written backward)."""
    GroupNorm = LAYER_SETS[ops].GroupNorm
    B, C = shape[0], shape[-1]
    keys = jax.random.split(jax.random.key(0), 6)
    x = 3.0 + 2.0 * jax.random.normal(keys[0], shape)  # a mean far from 0 tests the variance
    params = {"params": {"scale": jax.random.normal(keys[1], (C,)),
                         "bias": jax.random.normal(keys[2], (C,))}}
    fs = 0.3 * jax.random.normal(keys[3], (B, C)) if film else jnp.zeros((B, C))
    fsh = jax.random.normal(keys[4], (B, C)) if film else jnp.zeros((B, C))
    w = jax.random.normal(keys[5], shape)
    bshape = (B,) + (1,) * (len(shape) - 2) + (C,)

    def ours(p, x, fs, fsh):
        out = GroupNorm(8).apply(p, x, film=(fs, fsh) if film else None, activation=nn.silu)
        return jnp.sum(w * out)

    def reference(p, x, fs, fsh):
        h = nn.GroupNorm(8).apply(p, x) * (1 + fs.reshape(bshape)) + fsh.reshape(bshape)
        return jnp.sum(w * nn.silu(h))

    np.testing.assert_allclose(ours(params, x, fs, fsh), reference(params, x, fs, fsh), rtol=1e-5)
    argnums = (0, 1, 2, 3) if film else (0, 1)  # without FiLM, ours does not see fs and fsh
    got = jax.grad(ours, argnums=argnums)(params, x, fs, fsh)
    want = jax.grad(reference, argnums=argnums)(params, x, fs, fsh)
    for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(r))))


def test_only_the_fast_group_norm_has_a_custom_gradient():
    """The fast GroupNorm is a custom_vjp whose backward ends in an optimization barrier; the
    stock one is plain autodiff of flax's layer."""
    x = jax.random.normal(jax.random.key(0), (2, 16, 8))

    def primitives(ops: str, grad: bool) -> set[str]:
        norm = LAYER_SETS[ops].GroupNorm(4)
        params = norm.init(jax.random.key(1), x)
        f = lambda x: jnp.sum(norm.apply(params, x, activation=nn.silu))  # noqa: E731
        jaxpr = jax.make_jaxpr(jax.grad(f) if grad else f)(x)
        return set(re.findall(r"custom_vjp_call|optimization_barrier", str(jaxpr)))

    assert primitives("fast", grad=False) == {"custom_vjp_call"}
    assert primitives("fast", grad=True) == {"optimization_barrier"}
    assert primitives("stock", grad=False) == primitives("stock", grad=True) == set()


def test_group_norm_bf16_output_and_float32_statistics():
    GroupNorm = LAYER_SETS["fast"].GroupNorm
    x = 100.0 + jax.random.normal(jax.random.key(0), (2, 16, 32))
    norm = GroupNorm(4, dtype=jnp.bfloat16)
    params = norm.init(jax.random.key(1), x)
    out = norm.apply(params, x.astype(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    ref = nn.GroupNorm(4).apply(params, x.astype(jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05)


def test_dense_equals_flax_dense_and_multiplies_in_the_weights_dtype():
    """Same params and values as nn.Dense in float32; bf16 weights give a bf16 x bf16 -> f32
    product."""
    x = jax.random.normal(jax.random.key(0), (4, 96))
    ours, theirs = Dense(40), nn.Dense(40)
    params = ours.init(jax.random.key(1), x)
    assert jax.tree.structure(params) == jax.tree.structure(theirs.init(jax.random.key(1), x))
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-6)

    half = cast_weights(params, jnp.bfloat16)
    assert half["params"]["kernel"].dtype == jnp.bfloat16  # 2-D: cast
    assert half["params"]["bias"].dtype == jnp.float32  # 1-D: kept
    out = ours.apply(half, x)
    assert out.dtype == jnp.float32
    want = jnp.dot(x.astype(jnp.bfloat16).astype(jnp.float32),
                   half["params"]["kernel"].astype(jnp.float32)) + params["params"]["bias"]
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert cast_weights(params, None) is params and cast_weights(params, jnp.float32) is params


def test_cpu_attention_equals_the_fused_reference():
    """The fast set's attention (heads-first on CPU) equals jax.nn.dot_product_attention, grads
    included."""
    keys = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(key, (2, 13, 24)) for key in keys)
    w = jax.random.normal(jax.random.key(1), (2, 13, 24))

    def loss(attend):
        return lambda q, k, v: jnp.sum(w * multi_head_attention(q, k, v, 3, attend=attend))

    fast, stock = loss(attention), loss(jax.nn.dot_product_attention)
    np.testing.assert_allclose(fast(q, k, v), stock(q, k, v), rtol=1e-5)
    for got, want in zip(jax.grad(fast, (0, 1, 2))(q, k, v), jax.grad(stock, (0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
