"""Tests of the four denoisers: parameter counts against the paper, and behaviour at tiny sizes."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.models import MODELS, build_model, count_params, register_model
from genodiff_jax.models.cnn_unet import CNNUNet
from genodiff_jax.models.mlp_unet import MLPUNet

NUM_CLASSES = 26
K = 8
G_1KG = 26_624

# The paper's sizes (DESIGN 1.3) at the 1KG shape and at G = 2048; we must be within 2 %.
PAPER_PARAMS = {
    (G_1KG, "mlp_unet"): 444e6,
    (G_1KG, "cnn_unet"): 18.6e6,
    (G_1KG, "mlp_cnn"): 463e6,
    (G_1KG, "transformer"): 186e6,
    (2048, "mlp_unet"): 41.6e6,
    (2048, "cnn_unet"): 18.6e6,
    (2048, "mlp_cnn"): 60.1e6,
    (2048, "transformer"): 34.1e6,
}

TINY_MLP = dict(widths=(64, 32), bottleneck=32, num_groups=8)
TINY_CNN = dict(
    base_channels=16,
    channel_mult=(1, 2),
    num_res_blocks=1,
    attention_ds=(2,),
    num_heads=2,
    head_channels=8,
    num_groups=8,
)
TINY = {
    "mlp_unet": dict(TINY_MLP, dropout=0.1),
    "cnn_unet": dict(TINY_CNN, dropout=0.1),
    "mlp_cnn": dict(
        mlp_widths=TINY_MLP["widths"],
        mlp_bottleneck=TINY_MLP["bottleneck"],
        mlp_dropout=0.1,
        cnn_dropout=0.1,
        **TINY_CNN,
    ),
    "transformer": dict(width=32, depth=2, num_heads=4, time_freq_dim=16, dropout=0.1),
}
G_TINY, B = 128, 2

# Tiny CPU programs: LLVM's optimisations would cost more compile time than they save.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def tiny(name: str, **overrides) -> nn.Module:
    return build_model(name, num_classes=NUM_CLASSES, **{**TINY[name], **overrides})


def inputs(G: int = G_TINY, seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
    kx, kt, ky = jax.random.split(jax.random.key(seed), 3)
    x_BxGxK = jax.random.normal(kx, (B, G, K))
    t_B = jax.random.uniform(kt, (B,))
    y_B = jax.random.randint(ky, (B,), 0, NUM_CLASSES)
    return x_BxGxK, t_B, y_B


def random_params(model: nn.Module, G: int = G_TINY, seed: int = 1):
    """Random params of the right shapes, made on the host from `jax.eval_shape` of the init.

    Skips compiling the init (slow on CPU) and makes every layer non-zero, ADM's
    zero-initialised outputs included, so that every input can reach the output.
    """
    abstract = jax.eval_shape(model.init, jax.random.key(0), *inputs(G))["params"]
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path[-1:])
        z = rng.standard_normal(leaf.shape).astype(np.float32)
        if "scale" in name:
            return jnp.asarray(1.0 + 0.1 * z)
        if "bias" in name or leaf.ndim < 2:
            return jnp.asarray(0.1 * z)
        return jnp.asarray(z / np.sqrt(np.prod(leaf.shape[:-1])))

    return jax.tree_util.tree_map_with_path(draw, abstract)


@functools.cache
def setup_tiny(name: str):
    """(model, random params, jitted apply) for the tiny `name`, built once per session."""
    model = tiny(name)
    return model, random_params(model), fast_jit(model.apply, static_argnames="train")


# --- registry and parameter counts -----------------------------------------------------------


def test_registry_has_the_four_denoisers():
    assert set(MODELS) == {"mlp_unet", "cnn_unet", "mlp_cnn", "transformer"}
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", num_classes=2)
    with pytest.raises(ValueError, match="already registered"):
        register_model("mlp_unet")(MLPUNet)


@pytest.mark.parametrize(("G", "name"), sorted(PAPER_PARAMS))
def test_param_count_matches_paper(G: int, name: str):
    n = count_params(build_model(name, num_classes=NUM_CLASSES), G, K)
    expected = PAPER_PARAMS[(G, name)]
    assert abs(n / expected - 1) < 0.02, f"{name} at G={G}: {n:,} vs {expected:,.0f}"


def test_cnn_param_count_does_not_depend_on_genes():
    model = build_model("cnn_unet", num_classes=NUM_CLASSES)
    assert count_params(model, 128, K) == count_params(model, G_1KG, K)


# --- behaviour at tiny sizes -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_dtype_finite(name: str):
    _, params, apply = setup_tiny(name)
    x, t, y = inputs()
    out = apply({"params": params}, x, t, y, train=False)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.all(np.isfinite(out))
    # The null class (index num_classes) is a valid label.
    out_null = apply({"params": params}, x, t, jnp.full_like(y, NUM_CLASSES), train=False)
    assert np.all(np.isfinite(out_null))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_real_init_at_another_gene_count(name: str):
    """The same module initialises and runs at G = 256; cnn_unet starts as the identity.

    ADM zero-initialises the last layer of every residual branch and of the output, so at
    init the CNN's output is exactly its input. (An RBG key only to compile the init faster.)
    """
    model = tiny(name)
    x, t, y = inputs(G=256)

    @fast_jit
    def init_and_apply(key, x, t, y):
        variables = model.init(key, x, t, y)
        return model.apply(variables, x, t, y), variables["params"]

    out, params = init_and_apply(jax.random.key(0, impl="unsafe_rbg"), x, t, y)
    assert out.shape == x.shape and np.all(np.isfinite(out))
    assert sum(p.size for p in jax.tree_util.tree_leaves(params)) == count_params(model, 256, K)
    if name == "cnn_unet":
        np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_depends_on_label(name: str):
    _, params, apply = setup_tiny(name)
    x, t, _ = inputs()
    out_a = apply({"params": params}, x, t, jnp.array([0, 1]), train=False)
    out_b = apply({"params": params}, x, t, jnp.array([2, NUM_CLASSES]), train=False)
    assert np.all(np.max(np.abs(out_a - out_b), axis=(1, 2)) > 1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_depends_on_time(name: str):
    _, params, apply = setup_tiny(name)
    x, _, y = inputs()
    out_a = apply({"params": params}, x, jnp.array([0.1, 0.5]), y, train=False)
    out_b = apply({"params": params}, x, jnp.array([0.6, 0.9]), y, train=False)
    assert np.all(np.max(np.abs(out_a - out_b), axis=(1, 2)) > 1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_compute_is_finite_and_close(name: str):
    _, params, apply = setup_tiny(name)
    model_bf16 = tiny(name, dtype=jnp.bfloat16)
    x, t, y = inputs()
    out32 = apply({"params": params}, x, t, y, train=False)
    out16 = fast_jit(model_bf16.apply)({"params": params}, x, t, y)
    assert out16.dtype == x.dtype and np.all(np.isfinite(out16))
    # bf16 keeps ~3 significant digits: the network part must agree to a few percent.
    err = np.linalg.norm(out16 - out32) / np.linalg.norm(out32 - x)
    assert 0 < err < 0.1, err  # > 0: the compute really was bf16


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dropout_only_in_training(name: str):
    _, params, apply = setup_tiny(name)
    x, t, y = inputs()
    variables = {"params": params}
    eval_1 = apply(variables, x, t, y, train=False)
    eval_2 = apply(variables, x, t, y, train=False, rngs={"dropout": jax.random.key(5)})
    np.testing.assert_array_equal(eval_1, eval_2)
    train_a = apply(variables, x, t, y, train=True, rngs={"dropout": jax.random.key(1)})
    train_a2 = apply(variables, x, t, y, train=True, rngs={"dropout": jax.random.key(1)})
    train_b = apply(variables, x, t, y, train=True, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(train_a, train_a2)
    assert np.max(np.abs(train_a - train_b)) > 1e-4
    assert np.max(np.abs(train_a - eval_1)) > 1e-4
    assert np.all(np.isfinite(train_a))


def test_gradients_reach_the_mix_and_the_mlp():
    """mlp_cnn: a loss has finite, non-zero gradients for the mix weight and the MLP half.

    (The CNN half is held fixed: its backward pass alone takes ~7 s to compile on CPU.)
    """
    model, params, _ = setup_tiny("mlp_cnn")
    x, t, y = inputs()
    trainable = {k: v for k, v in params.items() if k != "cnn"}

    def loss(trainable):
        out = model.apply({"params": {**trainable, "cnn": params["cnn"]}}, x, t, y)
        return jnp.mean(out**2)

    grads = fast_jit(jax.grad(loss))(trainable)
    assert set(grads) == {"mlp", "mix_hidden_layer", "mix_out"}
    for part, g in grads.items():
        leaves = jax.tree_util.tree_leaves(g)
        assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
        assert sum(float(jnp.sum(jnp.abs(leaf))) for leaf in leaves) > 0, part


# --- model-specific properties ---------------------------------------------------------------


@pytest.mark.parametrize("G", [100, 192])
def test_cnn_unet_rejects_genes_not_divisible_by_128(G: int):
    model = build_model("cnn_unet", num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="divisible by 128"):
        count_params(model, G, K)


def test_transformer_rejects_partial_tokens():
    with pytest.raises(ValueError, match="divisible by 16"):
        count_params(build_model("transformer", num_classes=NUM_CLASSES), 120, K)


def test_mlp_cnn_is_convex_mix_of_its_halves():
    model, params, apply = setup_tiny("mlp_cnn")
    x, t, y = inputs()
    t = jnp.array([0.05, 0.95])
    out = apply({"params": params}, x, t, y, train=False)

    w_B = model.apply({"params": params}, t, method="mix_weight")
    assert w_B.shape == (B,) and np.all((w_B > 0) & (w_B < 1))
    w_grid = model.apply({"params": params}, jnp.linspace(0.0, 0.999, 64), method="mix_weight")
    assert np.all((w_grid > 0) & (w_grid < 1))

    # Each half run on its own, as a standalone module on its own slice of the params.
    mlp = MLPUNet(NUM_CLASSES, **TINY["mlp_unet"])
    cnn = CNNUNet(NUM_CLASSES, **TINY["cnn_unet"])
    out_mlp = fast_jit(mlp.apply)({"params": params["mlp"]}, x, t, y)
    out_cnn = fast_jit(cnn.apply)({"params": params["cnn"]}, x, t, y)
    assert np.max(np.abs(out_mlp - out_cnn)) > 1e-3  # otherwise the check below is vacuous
    w = w_B[:, None, None]
    np.testing.assert_allclose(out, (1 - w) * out_mlp + w * out_cnn, rtol=1e-5, atol=1e-5)


def test_mlp_unet_is_residual_on_flat_features():
    """Zeroing the output layer leaves exactly the input: the net adds to x."""
    _, params, apply = setup_tiny("mlp_unet")
    x, t, y = inputs()
    zeroed = dict(params, out=jax.tree_util.tree_map(jnp.zeros_like, params["out"]))
    np.testing.assert_array_equal(apply({"params": zeroed}, x, t, y, train=False), x)


@pytest.mark.parametrize("shape", [(4, 64), (3, 40, 64), (2, 6, 5, 32)])
@pytest.mark.parametrize("film", [False, True])
def test_group_norm_matches_flax_values_and_gradients(shape: tuple[int, ...], film: bool):
    """The fused GroupNorm (custom backward) equals flax's GroupNorm + FiLM + SiLU, grads included."""
    from genodiff_jax.models.norm import GroupNorm

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


def test_group_norm_bf16_output_and_float32_statistics():
    from genodiff_jax.models.norm import GroupNorm

    x = 100.0 + jax.random.normal(jax.random.key(0), (2, 16, 32))
    norm = GroupNorm(4, dtype=jnp.bfloat16)
    params = norm.init(jax.random.key(1), x)
    out = norm.apply(params, x.astype(jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    ref = nn.GroupNorm(4).apply(params, x.astype(jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.05)


def test_dense_equals_flax_dense_and_multiplies_in_the_weights_dtype():
    """Same params and values as nn.Dense in float32; bf16 weights give a bf16 x bf16 -> f32 product."""
    from genodiff_jax.models.dense import Dense, cast_weights

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


def test_bf16_weights_keep_the_mlp_unet_close():
    from genodiff_jax.models.dense import cast_weights

    model = build_model("mlp_unet", num_classes=3, widths=(64, 32), bottleneck=16, num_groups=8)
    x = jax.random.normal(jax.random.key(0), (4, 16, 8))
    t, y = jnp.linspace(0.1, 0.9, 4), jnp.arange(4) % 3
    params = model.init({"params": jax.random.key(1)}, x, t, y)["params"]
    full = model.apply({"params": params}, x, t, y)
    half = model.apply({"params": cast_weights(params, jnp.bfloat16)}, x, t, y)
    assert half.dtype == jnp.float32
    rel = float(jnp.linalg.norm(half - full) / jnp.linalg.norm(full - x))
    assert 0 < rel < 0.02  # bf16 rounding of the weights, nothing more


def test_cpu_attention_equals_the_fused_reference():
    """The heads-first attention used on CPU equals jax.nn.dot_product_attention, grads included."""
    from genodiff_jax.models.embeddings import multi_head_attention

    q, k, v = (jax.random.normal(key, (2, 13, 24)) for key in jax.random.split(jax.random.key(0), 3))
    w = jax.random.normal(jax.random.key(1), (2, 13, 24))

    def loss(impl):
        return lambda q, k, v: jnp.sum(w * multi_head_attention(q, k, v, 3, impl))

    np.testing.assert_allclose(loss(None)(q, k, v), loss("xla")(q, k, v), rtol=1e-5)
    for got, want in zip(jax.grad(loss(None), (0, 1, 2))(q, k, v),
                         jax.grad(loss("xla"), (0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
