"""`genodiff bench --project`: GPU projections computed on the CPU, at tiny sizes. The projection
compiles only; nothing here is timed or allocated at the GPU's scale."""

from __future__ import annotations

import contextlib
import io
import json
import math
import types

import pytest

from genodiff_jax import bench, cli
from genodiff_jax.bench import projection
from genodiff_jax.data.prepare import PrepareSettings
from genodiff_jax.families.gene_pca import SAMPLING_GOALS
from genodiff_jax.sharding import make_mesh

TINY_MLP = '{"widths": [16, 8], "bottleneck": 8, "num_groups": 4}'
TINY_SNP = '{"channels": [16]}'
H100_KIND = projection.DEVICES["h100"].kind
# "small" holds the tiny MLP U-Net's train step at genes 16 at batch 16 but not 32 (~0.26 and
# ~0.41 MB planned), so its search compiles three batches; "none" fits not even batch 8.
TINY_DEVICES = {"small": projection.Device("small", H100_KIND, 3.35, 3.3e-4),
                "none": projection.Device("none", H100_KIND, 3.35, 1e-9)}


def _bench(args: list[str], train_flops: dict | None = None) -> dict:
    """The CLI's JSON, with TINY_DEVICES registered; `train_flops` gets the FLOPs of every train
    step the projection compiles, by batch."""
    real = projection.compile_train_step

    def recording(spec, example, batch, **kwargs):
        compiled = real(spec, example, batch, **kwargs)
        if train_flops is not None:
            train_flops[batch] = bench.flops_per_device(compiled)
        return compiled

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        for name, device in TINY_DEVICES.items():
            mp.setitem(projection.DEVICES, name, device)
        mp.setattr(projection, "compile_train_step", recording)
        assert cli.main(["bench", *args, "--project-people", "6", "--quiet"]) == 0
    return json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def features() -> dict:
    """`--project` alone on a tiny MLP U-Net, onto the small device: the JSON and the train
    step's FLOPs at each batch compiled."""
    train_flops = {}
    out = _bench(["--model", "mlp_unet", "--model-kwargs", TINY_MLP, "--genes", "16",
                  "--project", "small"], train_flops)
    return {"json": out, "train_flops": train_flops}


def positive(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_roofline_is_the_longer_of_compute_and_memory():
    # 2 TFLOP at 1000 TFLOP/s: 2 ms; 1 TB at 2 TB/s: 0.5 s
    assert projection.roofline_seconds(2e12, 1e12, 1000.0, 2.0) == pytest.approx(0.5)
    assert projection.roofline_seconds(2e15, 1e9, 1000.0, 2.0) == pytest.approx(2.0)
    cost = projection.Cost(flops=989.4e12, bytes_accessed=4.02e12, memory_bytes=None)
    on = cost.on(projection.DEVICES["h100"], "bfloat16")  # 1 s of FLOPs, 1.2 s of HBM traffic
    assert on == {"seconds": pytest.approx(1.2), "compute_s": pytest.approx(1.0),
                  "memory_s": pytest.approx(1.2), "bound": "memory"}
    on = cost.on(projection.DEVICES["h200"], "bfloat16")  # the same FLOPs, 0.84 s of traffic
    assert on["seconds"] == pytest.approx(1.0) and on["bound"] == "compute"


def test_devices_take_their_peak_from_the_peak_table():
    h100, h200 = projection.DEVICES["h100"], projection.DEVICES["h200"]
    assert h100.peak_tflops("bfloat16") == h200.peak_tflops("bfloat16") == 989.4
    assert (h100.hbm_tb_per_s, h100.memory_gb) == (3.35, 80.0)
    assert (h200.hbm_tb_per_s, h200.memory_gb) == (4.8, 141.0)
    assert h100.memory_limit_gib * 2**30 == pytest.approx(80e9)  # GB = 1e9 bytes, GiB = 2**30


def test_the_training_split_of_1000_genomes():
    """2253 of 2504 people (prepare holds out ceil(0.1 x 2504) = 251): 7041 steps of 32."""
    default = PrepareSettings().test_fraction
    assert projection.TEST_FRACTION == default
    assert projection.train_people(2504) == 2253
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(list(range(2504)), test_size=default)
    assert len(train) == 2253
    assert bench.BenchSettings().project_people == projection.PEOPLE_1KG == 2504


def test_train_step_flops_grow_linearly_with_the_batch(features):
    """Affine in the batch (a per-example part, and the optimiser's constant part), over the
    batches the largest-batch search compiled."""
    flops = features["train_flops"]
    assert len(flops) >= 3 and all(positive(f) for f in flops.values())
    (b1, f1), (b2, f2), (b3, f3) = sorted(flops.items())[:3]
    assert (f3 - f2) / (b3 - b2) == pytest.approx((f2 - f1) / (b2 - b1), rel=0.05)
    assert f2 > f1
    assert flops[32] == features["json"]["results"][0]["projection"]["train"]["flops"]


def test_projection_alone_measures_nothing(features):
    out = features["json"]
    [entry] = out["results"]
    assert out["settings"]["what"] == [] and out["settings"]["project"] == ["small"]
    assert not {"train", "forward", "sample"} & entry.keys()
    p = entry["projection"]
    assert p["compute_dtype"] == "bfloat16" and "not a measurement" in p["basis"]
    for step in ("train", "sampling_step"):
        for key in ("flops", "bytes_accessed", "memory_bytes_per_device"):
            assert positive(p[step][key]), (step, key)
    assert p["train"]["batch"] == 32  # the paper's recipe
    # guided (the recipe's w = 0.1): both halves in one call of 2 x 6 rows
    assert p["sampling_step"]["model_calls"] == 2 and p["sampling_step"]["call_batch"] == 12


def test_projected_times_on_each_device(features):
    p = features["json"]["results"][0]["projection"]
    for name, block in p["devices"].items():
        device = TINY_DEVICES[name]
        peak, bw = device.peak_tflops("bfloat16"), device.hbm_tb_per_s
        for step, cost in (("train_step", p["train"]), ("sampling_step", p["sampling_step"])):
            assert block[step]["seconds"] == pytest.approx(projection.roofline_seconds(
                cost["flops"], cost["bytes_accessed"], peak, bw))
        w = block["workloads"]
        assert w["training"]["people"] == 5 and w["training"]["steps"] == math.ceil(100 * 5 / 32)
        assert w["training"]["seconds"] == pytest.approx(
            w["training"]["steps"] * block["train_step"]["seconds"])
        for sampler, (steps, goal_s) in SAMPLING_GOALS.items():
            got = w[f"sample_{sampler}"]
            assert got["steps"] == steps and got["goal_s"] == goal_s and got["people"] == 6
            assert got["seconds"] == pytest.approx(steps * block["sampling_step"]["seconds"])
            assert got["meets_goal"] == (got["seconds"] < goal_s)


def test_the_largest_batch_within_a_device(features):
    [found] = [d["largest_train_batch"] for d in
               features["json"]["results"][0]["projection"]["devices"].values()]
    assert found["batch"] in (16, 24) and found["memory_gb"] == 3.3e-4
    assert found["free_bytes_per_device"] == pytest.approx(3.3e-4 * 1e9, abs=1)
    assert all(q["fits"] == (q["bytes_per_device"] <= found["budget_bytes_per_device"])
               for q in found["probes"])


class _Planned:
    """A compiled step as the search sees it: 1000 + 100 bytes a row."""

    def __init__(self, batch: int):
        self.batch = batch

    def memory_analysis(self):
        return types.SimpleNamespace(argument_size_in_bytes=1000 + 100 * self.batch,
                                     output_size_in_bytes=0, temp_size_in_bytes=0,
                                     alias_size_in_bytes=0)


def test_more_memory_fits_a_larger_batch():
    [spec] = bench.resolve_models("mlp_unet", model_kwargs=json.loads(TINY_MLP))
    example = bench.build_example(spec, bench.build_denoiser(spec, 3),
                                  bench.BenchSettings(genes=16))
    found = {}
    for gb in (1e-4, 2e-4, 1e-3):  # budgets of 0.9 x 1e5, 2e5, 1e6 bytes
        device = projection.Device("fake", H100_KIND, 1.0, gb)
        found[gb] = projection._largest_batch(spec, example, 3, device, make_mesh(1), _Planned)
        best = (int(0.9 * gb * 1e9) - 1000) // 100 // 8 * 8  # the largest multiple of 8
        assert best - best // 8 <= found[gb]["batch"] <= best
    batches = [found[gb]["batch"] for gb in sorted(found)]
    assert batches == sorted(batches) and batches[0] < batches[-1]


def test_the_masked_family_projects_to_a_chromosome():
    out = _bench(["--config", "experiments/masked.py:smoke", "--model-kwargs", TINY_SNP,
                  "--window", "64", "--project", "none", "--project-snps", "1000"])
    p = out["results"][0]["projection"]
    assert p["sampling_step"]["model_calls"] == 1 and p["sampling_step"]["call_batch"] == 6
    block = p["devices"]["none"]
    assert block["largest_train_batch"]["batch"] is None  # not even batch 8 fits 1 byte
    w = block["workloads"]
    # windows of 64 SNPs overlapping by the smoke config's 32: starts 0, 32, ..., 928, 936
    assert w["chromosome"]["windows"] == 31 and w["chromosome"]["overlap"] == 32
    assert w["window"]["train_tokens_per_s"] == pytest.approx(
        8 * 2 * 64 / block["train_step"]["seconds"])
    assert w["window"]["sampler_tokens_x_steps_per_s"] == pytest.approx(
        6 * 2 * 64 / block["sampling_step"]["seconds"])
    assert w["chromosome"]["sample"]["seconds"] == pytest.approx(
        31 * 8 * block["sampling_step"]["seconds"])  # the smoke config's 8 steps a window
    assert w["chromosome"]["training"]["steps"] == 20  # the smoke config's train.num_steps


@pytest.mark.parametrize("args, message", [
    (["--project", "h300"], "--project: unknown device h300; known: h100, h200"),
    (["--project", "h100", "--project-people", "0"], "--project-people must be >= 1"),
])
def test_bad_projection_flags_are_one_line_and_exit_2(capfd, args, message):
    assert cli.main(["bench", "--model", "mlp_unet", *args, "--quiet"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("genodiff bench: error:") and message in err and "\n" not in err
