"""`genodiff bench --reference torch`: the PyTorch twins (benchmarks/torch_reference.py) have our
parameters, compute our function, and are timed beside ours. Nothing here asserts a speed.

torch is an optional benchmark dependency (benchmarks/requirements-torch.txt); CI installs only
requirements.txt, so there these tests skip.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is an optional benchmark dependency: "
    "pip install -r benchmarks/requirements-torch.txt")

from genodiff_jax import bench, cli  # noqa: E402
from genodiff_jax.bench.reference import usable_cpus  # noqa: E402
from genodiff_jax.diffusion.gaussian import GaussianProcess  # noqa: E402
from genodiff_jax.diffusion.predictions import v_from_x0_eps  # noqa: E402
from genodiff_jax.models import MODELS, build_model, count_params, representation  # noqa: E402
from genodiff_jax.train.state import OptimizerConfig, make_lr_schedule  # noqa: E402

TWINS = bench.torch_twins()
FEATURE_MODELS = sorted(n for n in MODELS if representation(n) == "features")
# (genes, components, classes, sizes): the tests' tiny sizes, and the paper's at 256 genes (the
# CNN U-Net needs a multiple of 128; every level and attention resolution is there)
SHAPES = [(16, 8, 3, "test"), (256, 8, 26, "paper")]


def _models(name: str, genes: int, components: int, classes: int, sizes: str):
    kwargs = MODELS[name].TEST_SIZES if sizes == "test" else {}
    ours = build_model(name, num_classes=classes, **kwargs)
    twin = TWINS.build_twin(name, bench.model_fields(ours), genes=genes, components=components,
                            num_classes=classes)
    return ours, twin


def _leaves_in_torch_order(tree, path=()):
    """(path, leaf) of a params dict as torch orders `parameters()`: at each module its own
    parameters, then its submodules, each in the order flax created them."""
    for key, value in tree.items():
        if not isinstance(value, dict):
            yield (*path, key), value
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves_in_torch_order(value, (*path, key))


def _our_parameters(model, G: int, K: int) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    """(path, shape) of each of our parameters in torch's order, without allocating them. The
    order is read while `init` is traced: the dict it returns keeps flax's creation order, which
    eval_shape's output (a pytree, keys sorted) would lose."""
    paths = []

    def init(x, t, y):
        key = jax.random.key(0)
        params = model.init({"params": key, "dropout": key}, x, t, y, train=False)["params"]
        leaves = list(_leaves_in_torch_order(params))
        paths.extend(path for path, _ in leaves)
        return [leaf for _, leaf in leaves]

    shapes = jax.eval_shape(init, jax.ShapeDtypeStruct((1, G, K), np.float32),
                            jax.ShapeDtypeStruct((1,), np.float32),
                            jax.ShapeDtypeStruct((1,), np.int32))
    return [(path, tuple(a.shape)) for path, a in zip(paths, shapes)]


def test_every_gene_pca_denoiser_has_a_twin():
    assert sorted(TWINS.TWINS) == FEATURE_MODELS == ["cnn_unet", "mlp_cnn", "mlp_unet",
                                                      "transformer"]


@pytest.mark.parametrize("genes, components, classes, sizes", SHAPES)
@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_each_twin_has_our_parameters(name, genes, components, classes, sizes):
    """Equal counts, tensor by tensor in the same order (and so the same in total)."""
    ours, twin = _models(name, genes, components, classes, sizes)
    sizes_ours = [math.prod(shape) for _, shape in _our_parameters(ours, genes, components)]
    assert sizes_ours == [p.numel() for p in twin.parameters()]
    assert TWINS.param_count(twin) == sum(sizes_ours) == count_params(ours, genes, components)


def _port(ours: list[tuple[tuple[str, ...], np.ndarray]], twin) -> None:
    """Copy our parameters ((path, value) in torch's order) into the twin: Dense kernels
    [in, out] transposed (into a Linear or a 1x1 Conv1d), conv kernels [k, in, out] to
    [out, in, k]; everything else (norms, tables, position-wise maps, tokens) as it is."""
    theirs = list(twin.parameters())
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for (path, a), p in zip(ours, theirs):
            if path[-1] == "kernel" and a.ndim == 2:
                a = a.T
            elif path[-1] == "kernel" and a.shape != tuple(p.shape):
                a = a.transpose(2, 1, 0)
            p.copy_(torch.from_numpy(np.ascontiguousarray(a)).reshape(p.shape))


def _nested(leaves: list[tuple[tuple[str, ...], np.ndarray]]) -> dict:
    tree: dict = {}
    for path, value in leaves:
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_each_twin_computes_our_function(name):
    """Our parameters (random, N(0, 0.2^2)) ported into the twin: the same output
    (train=False) on the same input."""
    G, K, C, B = 16, 8, 3, 3
    ours, twin = _models(name, G, K, C, "test")
    rng = np.random.default_rng(0)
    leaves = [(path, (0.2 * rng.standard_normal(shape)).astype(np.float32))
              for path, shape in _our_parameters(ours, G, K)]
    _port(leaves, twin)
    x = rng.standard_normal((B, G, K)).astype(np.float32)
    t = np.array([0.0, 0.37, 0.99], np.float32)
    y = np.array([0, 2, C], np.int32)  # the last: the null class
    apply = jax.jit(lambda p, x, t, y: ours.apply({"params": p}, x, t, y, train=False))
    want = np.asarray(apply(_nested(leaves), x, t, y)) - x
    with torch.no_grad():
        got = twin.eval()(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).numpy() - x
    assert np.abs(want).max() > 1e-2  # the residual branch is not trivially zero
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4 * np.abs(want).max())


def _recipe(prediction: str = "eps", **optim):
    """A twin's Recipe for a T = 50 cosine process; `optim` overrides the optimiser fields."""
    sched = GaussianProcess("cosine", 50, prediction).train_schedule
    kw = dict(learning_rate=2e-4, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
              clip_grad_norm=0.0, warmup_steps=100, total_steps=1000, end_lr_factor=0.0)
    return TWINS.Recipe(alpha_T=np.asarray(sched.alpha), sigma_T=np.asarray(sched.sigma),
                        model_time_T=np.arange(50, dtype=np.float32) / 50, prediction=prediction,
                        p_uncond=0.1, ema_decay=0.999, **{**kw, **optim})


def test_the_train_recipe_is_ours():
    """The twin's lr schedule is optax's as we build it, and its v target is ours."""
    schedule = make_lr_schedule(OptimizerConfig(learning_rate=2e-4, warmup_steps=100,
                                                total_steps=1000, end_lr_factor=0.1))
    recipe = _recipe("v", end_lr_factor=0.1)
    for u in (0, 1, 50, 99, 100, 101, 500, 999, 1000, 2000):
        assert TWINS.learning_rate(recipe, u) == pytest.approx(float(schedule(u)), rel=1e-5,
                                                               abs=1e-12)
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 4, 16, 8)).astype(np.float32)
    alpha, sigma = np.float32(0.6), np.float32(0.8)
    np.testing.assert_allclose(
        TWINS.TARGETS["v"](torch.from_numpy(x0), torch.from_numpy(eps), alpha, sigma).numpy(),
        np.asarray(v_from_x0_eps(x0, eps, alpha, sigma)), rtol=1e-6)


@pytest.mark.parametrize("name, recipe", [
    ("mlp_unet", dict(prediction="v")), ("cnn_unet", dict(clip_grad_norm=1.0)),
    ("mlp_cnn", dict(prediction="x0")), ("transformer", dict(weight_decay=0.01))])
def test_each_twin_train_step_moves_weights_and_ema(name, recipe):
    """Three steps (eps, v and x0 targets; clipping; AdamW): finite loss, the weights and their
    EMA move."""
    _, twin = _models(name, 16, 8, 3, "test")
    rng = np.random.default_rng(0)
    step = TWINS.TrainStep(twin, _recipe(**recipe), data_NxGxK=rng.standard_normal((16, 16, 8)),
                           labels_N=rng.integers(0, 3, 16), mask_GxK=None, batch=4,
                           num_classes=3, seed=0)
    before = [p.detach().clone() for p in step.params]
    for _ in range(3):
        step()
    assert step.updates == 3 and math.isfinite(step.last_loss) and step.last_grad_norm > 0
    # lr 0 at the first update (warm-up from 0), then the weights and their EMA move
    assert any(not torch.equal(a, p) for a, p in zip(before, step.params))
    assert any(not torch.equal(a, e) for a, e in zip(before, step.ema))


# The CNN models' train steps take XLA half a minute to compile even at these sizes: their
# twins' train steps are exercised above, their bench sections here are the forward.
@pytest.mark.parametrize("name, what", [("mlp_unet", "train,forward"),
                                        ("transformer", "train,forward"),
                                        ("cnn_unet", "forward"), ("mlp_cnn", "forward")])
def test_bench_times_the_twin_beside_ours(name, what, capsys):
    """`--reference torch`: both parameter counts, the twin's timings in each section, and
    ratio = torch seconds / ours, from the same run."""
    kwargs = json.dumps(MODELS[name].TEST_SIZES)
    assert cli.main(["bench", "--model", name, "--model-kwargs", kwargs, "--genes", "16",
                     "--components", "8", "--classes", "3", "--batch", "4", "--repeats", "1",
                     "--warmup", "0", "--what", what, "--reference", "torch", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["reference"] == "torch"
    [entry] = out["results"]
    ref = entry["reference"]
    assert ref["impl"] == "torch" and ref["version"] == torch.__version__
    assert ref["threads"] == usable_cpus() == torch.get_num_threads()
    assert ref["params"] == ref["params_ours"] == entry["params"] and ref["params_equal"] is True
    sections = {"train": "step", "forward": "call"}
    assert {k for k in sections if k in entry} == set(what.split(","))
    for section in what.split(","):
        r, unit = entry[section], sections[section]
        theirs = r["reference"][f"seconds_per_{unit}"]
        assert theirs > 0 and r["reference"]["times_s"] == [theirs]
        assert r["reference"]["first_call_s"] > 0
        assert r["ratio"] == pytest.approx(theirs / r[f"seconds_per_{unit}"])
        assert "speedup" not in r
    if "train" in entry:
        assert math.isfinite(entry["train"]["reference"]["last_loss"])


def test_a_model_without_a_twin_is_refused(capfd):
    assert cli.main(["bench", "--config", "experiments/masked.py:smoke", "--reference", "torch",
                     "--quiet"]) == 2
    err = capfd.readouterr().err.strip()
    assert "no PyTorch twin of snp_unet (twins: cnn_unet, mlp_cnn, mlp_unet, transformer)" in err
    assert "\n" not in err
