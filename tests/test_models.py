"""Tests of the denoisers: parameter counts against the paper, behaviour at each registered model's
own tiny sizes (`TEST_SIZES`), and the "stock" layer set against the "fast" one."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.models import (
    MODELS,
    build_model,
    count_params,
    inference_compiler_options,
    inference_weights,
    register_model,
    representation,
)
from genodiff_jax.models.ops import LAYER_SETS
from genodiff_jax.models.ops.xla import CPU_DOT_AND_ELTWISE_ONLY

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

G_TINY, B = 128, 2
TOKEN_MODELS = ("tokens", "panel")  # representations whose input is a window of SNP tokens
PANEL_ROWS = 3  # reference rows a panel model reads

# Tiny CPU programs: LLVM's optimisations would cost more compile time than they save.
fast_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def tiny(name: str, **overrides) -> nn.Module:
    """The model `name` at the sizes it declares for tests."""
    return build_model(name, num_classes=NUM_CLASSES, **{**MODELS[name].TEST_SIZES, **overrides})


def inputs(name: str, G: int = G_TINY, seed: int = 0):
    """(x, t, y) for the model `name`: features [B, G, K], or for a token model a window of G
    SNPs (tokens of 2 haplotypes with MASK among them, positions, allele frequencies)."""
    kx, kt, ky, kp = jax.random.split(jax.random.key(seed), 4)
    if representation(name) in TOKEN_MODELS:
        vocab = MODELS[name].vocab_size
        gaps = jax.random.uniform(kp, (B, G), minval=10.0, maxval=5_000.0)
        x = {"tokens": jax.random.randint(kx, (B, 2, G), 0, vocab + 1).astype(jnp.int8),
             "pos": jnp.cumsum(gaps, axis=1),
             "af": jax.random.uniform(kp, (B, G), minval=0.01, maxval=0.99)}
        if representation(name) == "panel":
            x["panel"] = jax.random.randint(kp, (B, PANEL_ROWS, G), 0, vocab).astype(jnp.int8)
    else:
        x = jax.random.normal(kx, (B, G, K))
    t_B = jax.random.uniform(kt, (B,))
    y_B = jax.random.randint(ky, (B,), 0, NUM_CLASSES)
    return x, t_B, y_B


def output_shape(name: str, x) -> tuple[int, ...]:
    """A feature model predicts x's shape; a token model gives logits [B, 2, L, vocab]."""
    if representation(name) in TOKEN_MODELS:
        return (*x["tokens"].shape, MODELS[name].vocab_size)
    return x.shape


def network_part(name: str, out, x):
    """What the network adds: a feature model's output minus its input (the CNN is residual),
    a token model's logits as they are."""
    return out if representation(name) in TOKEN_MODELS else out - x


def per_row_max(a) -> np.ndarray:
    return np.max(np.abs(a), axis=tuple(range(1, a.ndim)))


def num_params(tree) -> int:
    return sum(p.size for p in jax.tree_util.tree_leaves(tree))


def random_params(name: str, model: nn.Module, G: int = G_TINY, seed: int = 1):
    """Random params of the right shapes, made on the host from `jax.eval_shape` of the init.

    Skips compiling the init (slow on CPU) and makes every layer non-zero, ADM's
    zero-initialised outputs included, so that every input can reach the output.
    """
    abstract = jax.eval_shape(model.init, jax.random.key(0), *inputs(name, G))["params"]
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
    return model, random_params(name, model), fast_jit(model.apply, static_argnames="train")


# --- registry and parameter counts -----------------------------------------------------------


def test_registry_has_the_papers_denoisers_and_rejects_unknown_or_taken_names():
    assert {name for _, name in PAPER_PARAMS} <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", num_classes=2)
    with pytest.raises(ValueError, match="already registered"):
        register_model("mlp_unet")(MODELS["mlp_unet"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_declares_test_sizes_and_the_common_fields(name: str):
    cls = MODELS[name]
    assert isinstance(cls.TEST_SIZES, dict) and cls.TEST_SIZES
    fields = set(cls.__dataclass_fields__)
    assert {"num_classes", "dtype", "param_dtype", "ops"} <= fields
    assert set(cls.TEST_SIZES) <= fields
    assert cls(num_classes=2).ops == "fast"


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
    x, t, y = inputs(name)
    out = apply({"params": params}, x, t, y, train=False)
    assert out.shape == output_shape(name, x) and out.dtype == jnp.float32
    assert np.all(np.isfinite(out))
    # The null class (index num_classes) is a valid label.
    out_null = apply({"params": params}, x, t, jnp.full_like(y, NUM_CLASSES), train=False)
    assert np.all(np.isfinite(out_null))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_real_init_at_another_gene_count(name: str):
    """The same module initialises and runs at G = 256 (genes or SNPs); cnn_unet starts as the
    identity.

    ADM zero-initialises the last layer of every residual branch and of the output, so at
    init the CNN's output is exactly its input. (An RBG key only to compile the init faster.)
    """
    model = tiny(name)
    x, t, y = inputs(name, G=256)

    @fast_jit
    def init_and_apply(key, x, t, y):
        variables = model.init(key, x, t, y)
        return model.apply(variables, x, t, y), variables["params"]

    out, params = init_and_apply(jax.random.key(0, impl="unsafe_rbg"), x, t, y)
    assert out.shape == output_shape(name, x) and np.all(np.isfinite(out))
    if representation(name) == "features":
        assert num_params(params) == count_params(model, 256, K)
    else:  # the SNP model's parameters do not depend on the window's length
        assert num_params(params) == num_params(setup_tiny(name)[1])
    if name == "cnn_unet":
        np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_depends_on_label(name: str):
    _, params, apply = setup_tiny(name)
    x, t, _ = inputs(name)
    out_a = apply({"params": params}, x, t, jnp.array([0, 1]), train=False)
    out_b = apply({"params": params}, x, t, jnp.array([2, NUM_CLASSES]), train=False)
    assert np.all(per_row_max(out_a - out_b) > 1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_depends_on_time(name: str):
    _, params, apply = setup_tiny(name)
    x, _, y = inputs(name)
    out_a = apply({"params": params}, x, jnp.array([0.1, 0.5]), y, train=False)
    out_b = apply({"params": params}, x, jnp.array([0.6, 0.9]), y, train=False)
    assert np.all(per_row_max(out_a - out_b) > 1e-4)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bf16_compute_is_finite_and_close(name: str):
    _, params, apply = setup_tiny(name)
    model_bf16 = tiny(name, dtype=jnp.bfloat16)
    x, t, y = inputs(name)
    out32 = apply({"params": params}, x, t, y, train=False)
    out16 = fast_jit(model_bf16.apply)({"params": params}, x, t, y)
    assert out16.dtype == jnp.float32 and np.all(np.isfinite(out16))
    # bf16 keeps ~3 significant digits: the network part must agree to a few percent.
    err = np.linalg.norm(out16 - out32) / np.linalg.norm(network_part(name, out32, x))
    assert 0 < err < 0.1, err  # > 0: the compute really was bf16


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dropout_only_in_training(name: str):
    _, params, apply = setup_tiny(name)
    x, t, y = inputs(name)
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
    x, t, y = inputs("mlp_cnn")
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
    x, t, y = inputs("mlp_cnn")
    t = jnp.array([0.05, 0.95])
    out = apply({"params": params}, x, t, y, train=False)

    w_B = model.apply({"params": params}, t, method="mix_weight")
    assert w_B.shape == (B,) and np.all((w_B > 0) & (w_B < 1))
    w_grid = model.apply({"params": params}, jnp.linspace(0.0, 0.999, 64), method="mix_weight")
    assert np.all((w_grid > 0) & (w_grid < 1))

    # Each half run on its own, as a standalone module on its own slice of the params.
    mlp, cnn = tiny("mlp_unet"), tiny("cnn_unet")
    out_mlp = fast_jit(mlp.apply)({"params": params["mlp"]}, x, t, y)
    out_cnn = fast_jit(cnn.apply)({"params": params["cnn"]}, x, t, y)
    assert np.max(np.abs(out_mlp - out_cnn)) > 1e-3  # otherwise the check below is vacuous
    w = w_B[:, None, None]
    np.testing.assert_allclose(out, (1 - w) * out_mlp + w * out_cnn, rtol=1e-5, atol=1e-5)


def test_mlp_unet_is_residual_on_flat_features():
    """Zeroing the output layer leaves exactly the input: the net adds to x."""
    _, params, apply = setup_tiny("mlp_unet")
    x, t, y = inputs("mlp_unet")
    zeroed = dict(params, out=jax.tree_util.tree_map(jnp.zeros_like, params["out"]))
    np.testing.assert_array_equal(apply({"params": zeroed}, x, t, y, train=False), x)


def test_bf16_weights_keep_the_mlp_unet_close():
    model = build_model("mlp_unet", num_classes=3, widths=(64, 32), bottleneck=16, num_groups=8)
    x = jax.random.normal(jax.random.key(0), (4, 16, 8))
    t, y = jnp.linspace(0.1, 0.9, 4), jnp.arange(4) % 3
    # jitted (this file's fast_jit): eagerly, each of the model's ops compiles apart
    params = fast_jit(model.init)({"params": jax.random.key(1)}, x, t, y)["params"]
    apply = fast_jit(model.apply)
    full = apply({"params": params}, x, t, y)
    half_params = inference_weights(model, params, jax.ShapeDtypeStruct((16, 8), jnp.float32),
                                    jnp.bfloat16)
    half = apply({"params": half_params}, x, t, y)
    assert half.dtype == jnp.float32
    rel = float(jnp.linalg.norm(half - full) / jnp.linalg.norm(full - x))
    assert 0 < rel < 0.02  # bf16 rounding of the weights, nothing more


# --- the "stock" layer set against the "fast" one ----------------------------------------------


def shapes(tree) -> dict[str, tuple[tuple[int, ...], jnp.dtype]]:
    return {jax.tree_util.keystr(path): (leaf.shape, leaf.dtype)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_stock_layers_give_the_same_params_and_outputs(name: str):
    """ops="stock" (flax's layers) has the fast set's parameter tree, so a checkpoint loads into
    either, and computes the same function up to float32 rounding. (Dropout masks differ by
    construction, so train=False.)"""
    _, params, apply = setup_tiny(name)
    stock = tiny(name, ops="stock")
    x, t, y = inputs(name)
    assert shapes(jax.eval_shape(stock.init, jax.random.key(0), x, t, y)["params"]) == shapes(
        params
    )
    out_fast = apply({"params": params}, x, t, y, train=False)
    out_stock = fast_jit(stock.apply)({"params": params}, x, t, y)
    np.testing.assert_allclose(out_stock, out_fast, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_stock_models_have_no_custom_gradients(name: str):
    """A stock model is plain flax: no custom_vjp anywhere in its training forward pass."""
    _, params, _ = setup_tiny(name)
    stock = tiny(name, ops="stock")
    rngs = {"dropout": jax.random.key(0)}
    jaxpr = jax.make_jaxpr(
        lambda p: stock.apply({"params": p}, *inputs(name), train=True, rngs=rngs)
    )(params)
    assert "custom_vjp" not in str(jaxpr)


def test_inference_compiler_options_belong_to_the_fast_layer_set(monkeypatch):
    assert jax.default_backend() == "cpu"  # conftest.py
    assert inference_compiler_options(tiny("cnn_unet")) == CPU_DOT_AND_ELTWISE_ONLY
    assert inference_compiler_options(tiny("mlp_cnn")) == CPU_DOT_AND_ELTWISE_ONLY
    assert inference_compiler_options(tiny("mlp_unet")) is None
    assert inference_compiler_options(tiny("cnn_unet", ops="stock")) is None
    assert inference_compiler_options(nn.Dense(3)) is None  # not a registered denoiser
    # An option this XLA does not know is dropped (with a warning), not a failed compile.
    unknown = {"cpu": {"xla_cpu_no_such_option": "1"}}
    monkeypatch.setitem(LAYER_SETS["fast"].compiler_options, "cnn_unet", unknown)
    assert inference_compiler_options(tiny("cnn_unet")) is None
