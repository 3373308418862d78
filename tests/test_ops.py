"""The layer sets (models/ops): the fast layers against flax's, and the sets as seen by a model."""

from __future__ import annotations

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.models import build_model, inference_weights, weights_dtype
from genodiff_jax.models.embeddings import multi_head_attention
from genodiff_jax.models.ops import LAYER_SETS, LayerSet
from genodiff_jax.models.ops import dense as dense_module
from genodiff_jax.models.ops.activation import gelu
from genodiff_jax.models.ops.attention import attention
from genodiff_jax.models.ops.dense import Dense


def test_the_sets_and_an_unknown_name():
    assert {"fast", "stock"} <= set(LAYER_SETS)
    stock = LAYER_SETS["stock"]
    assert stock.Dense is nn.Dense and stock.Dropout is nn.Dropout
    assert stock.attention is jax.nn.dot_product_attention
    assert issubclass(stock.GroupNorm, nn.GroupNorm) and not stock.compiler_options
    x = jnp.linspace(-3.0, 3.0, 7)
    np.testing.assert_array_equal(stock.gelu(x), nn.gelu(x, approximate=False))
    fork = LayerSet(GroupNorm=stock.GroupNorm, Dense=nn.Dense, Dropout=nn.Dropout,
                    attention=stock.attention)  # a set written before `gelu` existed
    np.testing.assert_array_equal(fork.gelu(x), nn.gelu(x, approximate=False))
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


def test_dense_equals_flax_dense():
    """Same params and values as nn.Dense in float32."""
    x = jax.random.normal(jax.random.key(0), (4, 96))
    ours, theirs = Dense(40), nn.Dense(40)
    params = ours.init(jax.random.key(1), x)
    assert jax.tree.structure(params) == jax.tree.structure(theirs.init(jax.random.key(1), x))
    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-6)


def tiny_mlp_unet():
    model = build_model("mlp_unet", num_classes=3, widths=(64, 32), bottleneck=16, num_groups=8)
    x = jax.random.normal(jax.random.key(0), (4, 16, 8))
    t, y = jnp.linspace(0.1, 0.9, 4), jnp.arange(4) % 3
    params = model.init({"params": jax.random.key(1)}, x, t, y)["params"]
    return model, params, (x, t, y), jax.ShapeDtypeStruct((16, 8), jnp.float32)


def test_inference_weights_are_bf16_with_dense_kernels_transposed():
    """Every Dense kernel becomes bf16 [out, in]; flax's own Dense (the time embedding) is only
    rounded; vectors stay float32; the model then computes the bf16 x bf16 -> f32 products of
    the rounded weights and inputs."""
    model, params, (x, t, y), row = tiny_mlp_unet()
    half = inference_weights(model, params, row, jnp.bfloat16)
    assert half["down_0"]["in"]["kernel"].shape == (64, 128)  # [out, in]; trained [128, 64]
    np.testing.assert_array_equal(half["out"]["kernel"],
                                  params["out"]["kernel"].astype(jnp.bfloat16).T)
    assert half["down_0"]["time"]["kernel"].shape == (1, 64)  # nn.Dense: not ours, not moved
    assert half["down_0"]["time"]["kernel"].dtype == jnp.bfloat16
    assert half["down_0"]["in"]["bias"].dtype == jnp.float32
    out = model.apply({"params": half}, x, t, y)
    rounded = jax.tree.map(
        lambda a: a.astype(jnp.bfloat16).astype(jnp.float32) if a.ndim >= 2 else a, params)
    want = model.apply({"params": rounded}, x, t, y)  # float32 products of the rounded weights
    assert out.dtype == jnp.float32
    rel = float(jnp.linalg.norm(out - want) / jnp.linalg.norm(want - x))
    assert rel < 0.01  # the bf16 rounding of the activations, nothing more
    assert inference_weights(model, params, row, None) is params
    assert inference_weights(model, params, row, jnp.float32) is params


def test_a_narrow_kernel_in_the_trained_layout_is_refused():
    """A bf16 kernel not made by inference_weights ([in, out]) names the layer and the fix."""
    model, params, (x, t, y), _ = tiny_mlp_unet()
    wrong = jax.tree.map(lambda a: a.astype(jnp.bfloat16) if a.ndim >= 2 else a, params)
    with pytest.raises(ValueError, match=r"Dense down_0/in: a bfloat16 kernel is the inference "
                       r"form \[\.\.\., out, in\] = \(64, 128\), got \(128, 64\)"):
        model.apply({"params": wrong}, x, t, y)


@pytest.mark.parametrize("flags,backend,want", [
    ("fpu avx512f avx512_bf16", "cpu", "bfloat16"), ("fpu amx_bf16 amx_tile", "cpu", "bfloat16"),
    ("fpu avx512f avx2", "cpu", "float32"), ("fpu avx512_bf16", "gpu", "float32")])
def test_auto_weights_dtype_follows_the_cpu(monkeypatch, tmp_path, flags, backend, want):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    real_path = dense_module.Path
    monkeypatch.setattr(dense_module, "Path", lambda p: real_path(cpuinfo)
                        if p == "/proc/cpuinfo" else real_path(p))
    monkeypatch.setattr(dense_module.jax, "default_backend", lambda: backend)
    dense_module.bf16_cpu.cache_clear()
    try:
        assert weights_dtype("auto") == weights_dtype(None) == want
        assert weights_dtype("float32") == "float32" and weights_dtype("bfloat16") == "bfloat16"
    finally:
        dense_module.bf16_cpu.cache_clear()
    with pytest.raises(ValueError, match="weights dtype must be one of auto, float32, bfloat16"):
        weights_dtype("float16")


def test_fast_gelu_is_the_exact_gelu():
    """The erf form equals jax's erfc form (the exact GELU, not the tanh one), grads included,
    from far below zero to far above."""
    x = jnp.linspace(-12.0, 12.0, 2001)
    exact = functools.partial(nn.gelu, approximate=False)
    np.testing.assert_allclose(gelu(x), exact(x), rtol=0, atol=2e-6)
    assert float(jnp.max(jnp.abs(gelu(x) - nn.gelu(x, approximate=True)))) > 1e-4
    np.testing.assert_allclose(jax.vmap(jax.grad(gelu))(x), jax.vmap(jax.grad(exact))(x),
                               rtol=0, atol=2e-6)


def test_the_transformer_samples_with_bf16_inference_kernels():
    """The transformer's attention and MLP products are the fast Dense, and its position-wise maps
    have an inference form too: after inference_weights their kernels are bf16 [..., out, in],
    and the call stays close to float32."""
    model = build_model("transformer", num_classes=3, width=32, depth=1, num_heads=4,
                        time_freq_dim=16)
    x = jax.random.normal(jax.random.key(0), (2, 32, 4))
    t, y = jnp.array([0.2, 0.7]), jnp.array([0, 2])
    params = model.init({"params": jax.random.key(1)}, x, t, y)["params"]
    half = inference_weights(model, params, jax.ShapeDtypeStruct((32, 4), jnp.float32),
                             jnp.bfloat16)
    for name, shape in [("qkv", (96, 32)), ("attn_out", (32, 32)), ("mlp_in", (128, 32)),
                        ("mlp_out", (32, 128))]:
        kernel = half["layer_0"][name]["kernel"]
        assert kernel.shape == shape and kernel.dtype == jnp.bfloat16, name
    # the position-wise maps: 2 tokens of 16 genes x 4 -> 32 and back, [N, out, in]
    assert half["tokenize"]["kernel"].shape == (2, 32, 64)
    np.testing.assert_array_equal(half["detokenize"]["kernel"], jnp.swapaxes(
        params["detokenize"]["kernel"].astype(jnp.bfloat16), 1, 2))
    full = model.apply({"params": params}, x, t, y)
    rel = float(jnp.linalg.norm(model.apply({"params": half}, x, t, y) - full)
                / jnp.linalg.norm(full - x))
    assert 0 < rel < 0.02


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
