"""`genodiff bench`: CI-size runs whose output must be well-formed. Nothing here asserts a speed."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genodiff_jax import bench, cli
from genodiff_jax.diffusion.gaussian import GaussianProcess
from genodiff_jax.errors import InputError
from genodiff_jax.models import MODELS, build_model, count_params

TINY_MLP = '{"widths": [16, 8], "bottleneck": 8, "num_groups": 4}'
RUN = ["--model", "mlp_unet", "--model-kwargs", TINY_MLP, "--genes", "32", "--batch", "4",
       "--repeats", "2", "--warmup", "1", "--what", "train,forward,sample", "--sampler", "ddim",
       "--sampler-options", "eta=0.5", "--steps", "2", "--n", "6", "--peak-tflops", "1.5",
       "--quiet"]
# The masked smoke config with one U-Net level: its train step compiles in half the time.
MASKED = ["--config", "experiments/masked.py:smoke"]
TINY_SNP = '{"channels": [16]}'
MASKED_RUN = [*MASKED, "--model-kwargs", TINY_SNP, "--window", "256", "--batch", "8", "--n", "16",
              "--steps", "4", "--repeats", "1", "--warmup", "0", "--what", "train,forward,sample",
              "--quiet"]
MACHINE_KEYS = {"backend", "device_kind", "device_count", "local_device_count", "process_count",
                "cpu_model", "cpu_count", "python", "jax", "jaxlib", "flax", "optax"}


def positive(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> dict:
    """One CLI run of every section on a tiny MLP U-Net: (stdout JSON, file JSON, its path)."""
    path = tmp_path_factory.mktemp("bench") / "out" / "bench.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["bench", *RUN, "--json", str(path)]) == 0
    return {"stdout": json.loads(stdout.getvalue()), "file": json.loads(path.read_text()),
            "path": path}


def test_json_is_written_and_printed_with_machine_and_command(tiny_run):
    out = tiny_run["file"]
    assert tiny_run["stdout"] == out
    assert not [p for p in tiny_run["path"].parent.iterdir() if p.name.endswith(".tmp")]
    assert out["command"].startswith("genodiff bench --model mlp_unet")
    assert MACHINE_KEYS <= out["machine"].keys()
    assert out["machine"]["backend"] == "cpu" and out["machine"]["cpu_count"] >= 1
    assert out["settings"]["what"] == ["train", "forward", "sample"]
    [entry] = out["results"]
    assert entry["model"] == "mlp_unet" and entry["paper_size"] is False
    assert entry["source"] == "paper sizes with --model-kwargs"
    assert entry["feature_shape"] == [32, 8] and entry["batch"] == 4
    assert entry["dtype"] == "float32" and entry["model_fields"]["widths"] == [16, 8]
    tiny = build_model("mlp_unet", num_classes=26, widths=(16, 8), bottleneck=8, num_groups=4)
    assert entry["params"] == count_params(tiny, 32, 8)


@pytest.mark.parametrize("section, unit", [("train", "step"), ("forward", "call")])
def test_train_and_forward_timings_are_well_formed(tiny_run, section, unit):
    r = tiny_run["file"]["results"][0][section]
    # compilation is reported apart from the timed calls
    for key in ("lower_s", "compile_s", "first_call_s", f"seconds_per_{unit}", "seconds_min",
                "seconds_max", "examples_per_s", f"flops_per_{unit}", "achieved_tflops", "mfu"):
        assert positive(r[key]), (key, r[key])
    assert len(r["times_s"]) == 2 and all(positive(t) for t in r["times_s"])
    assert r["seconds_min"] <= r[f"seconds_per_{unit}"] <= r["seconds_max"]
    assert r["examples_per_s"] == pytest.approx(4 / r[f"seconds_per_{unit}"])
    assert r["achieved_tflops"] == pytest.approx(
        r[f"flops_per_{unit}"] / r[f"seconds_per_{unit}"] / 1e12)
    assert r["mfu"] == pytest.approx(r["achieved_tflops"] / 1.5)  # --peak-tflops, one device
    assert r["peak_device_memory_bytes"] is None  # CPU gives no memory_stats
    assert "reference" not in r and "ratio" not in r  # no --reference: nothing beside ours
    if section == "train":
        assert r["loss_finite"] and positive(r["last_loss"])


def test_sampling_timings_are_well_formed(tiny_run):
    [(sampler, r)] = tiny_run["file"]["results"][0]["sample"].items()
    assert sampler == "ddim"
    for key in ("compile_and_first_run_s", "seconds_per_run", "samples_x_steps_per_s",
                "samples_per_s"):
        assert positive(r[key]), key
    assert r["samples_x_steps_per_s"] == pytest.approx(6 * 2 / r["seconds_per_run"])
    assert r["model_calls_per_step"] == 2 and r["batch_size"] == 6 and r["guidance"] == 0.1
    assert "tokens_x_steps_per_s" not in r  # features: no token units
    assert r["sampler_options"] == {"eta": 0.5}
    assert tiny_run["file"]["settings"]["sampler_options"] == {"eta": 0.5}


@pytest.fixture(scope="module")
def masked_run() -> dict:
    """One CLI run of every section on the masked family (snp_unet on tokens [2, 256])."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["bench", *MASKED_RUN]) == 0
    return json.loads(stdout.getvalue())


def test_the_masked_family_in_the_same_json(masked_run):
    [entry] = masked_run["results"]
    assert entry["model"] == "snp_unet" and entry["source"] == "experiments/masked.py:smoke"
    assert entry["diffusion"]["process"] == "masked" and entry["diffusion"]["tokens"] == \
        "haplotypes"
    assert entry["token_shape"] == [2, 256] and entry["tokens_per_example"] == 512
    assert "feature_shape" not in entry and entry["batch"] == 8 and positive(entry["params"])
    assert entry["model_fields"]["channels"] == [16]
    assert masked_run["settings"]["window"] == 256 and masked_run["settings"]["genes"] is None
    for section, unit in (("train", "step"), ("forward", "call")):
        r = entry[section]
        for key in ("compile_s", "first_call_s", f"seconds_per_{unit}", "examples_per_s",
                    "tokens_per_s", f"flops_per_{unit}", "achieved_tflops"):
            assert positive(r[key]), (section, key, r[key])
        assert r["examples_per_s"] == pytest.approx(8 / r[f"seconds_per_{unit}"])
        assert r["tokens_per_s"] == pytest.approx(512 * r["examples_per_s"])
        assert r["mfu"] is None and "reference" not in r
    assert entry["train"]["loss_finite"] and positive(entry["train"]["last_loss"])


def test_the_masked_family_samples_from_all_mask(masked_run):
    [(sampler, r)] = masked_run["results"][0]["sample"].items()
    assert sampler == "ancestral"
    for key in ("compile_and_first_run_s", "seconds_per_run", "samples_x_steps_per_s",
                "tokens_x_steps_per_s", "tokens_per_s"):
        assert positive(r[key]), key
    assert r["samples_x_steps_per_s"] == pytest.approx(16 * 4 / r["seconds_per_run"])
    assert r["tokens_x_steps_per_s"] == pytest.approx(512 * r["samples_x_steps_per_s"])
    assert r["tokens_per_s"] == pytest.approx(16 * 512 / r["seconds_per_run"])
    # the config's sampling.guidance (0) unless --guidance: one model call a step
    assert r["guidance"] == 0.0 and r["model_calls_per_step"] == 1 and r["batch_size"] == 16


def test_a_token_window_is_rounded_up_to_the_model_multiple():
    [spec] = bench.resolve_models(config="experiments/masked.py:smoke")
    model = bench.build_denoiser(spec, 3)
    assert model.length_multiple() == 4
    ex = bench.build_example(spec, model, bench.BenchSettings(window=250))
    assert ex.fields == {"token_shape": [2, 252], "tokens_per_example": 504, "window_asked": 250}
    assert ex.row["tokens"].shape == (2, 252) and ex.row["tokens"].dtype == np.int8
    assert ex.row["pos"].shape == ex.row["af"].shape == (252,) and ex.mask is None
    start = ex.start(3)
    assert (start["tokens"] == spec.process.mask_id).all() and start["pos"].shape == (3, 252)
    data = ex.data(np.random.default_rng(0), 5)
    assert data["tokens"].dtype == np.int8 and set(np.unique(data["tokens"])) <= {0, 1}
    assert (np.diff(data["pos"][0]) > 0).all() and data["pos"][0, 0] == 0
    default = bench.build_example(spec, model, bench.BenchSettings())
    assert default.fields["token_shape"] == [2, 256]  # the config's diffusion.window


def test_shape_flags_apply_per_family_in_a_mixed_run():
    """Each model takes its own family's shape flags; one that no model takes is an error."""
    both = bench.resolve_models("mlp_unet,snp_unet")
    bench.check_shape_flags(both, bench.BenchSettings(genes=64, window=128))
    with pytest.raises(InputError, match="--genes does not apply to snp_unet"):
        bench.check_shape_flags(both[1:], bench.BenchSettings(genes=64))


def test_a_config_supplies_model_and_recipe(tmp_path, capsys):
    assert cli.main(["bench", "--config", "experiments/paper_1kg.py:smoke", "--what", "forward",
                     "--genes", "16", "--batch", "2", "--repeats", "1", "--warmup", "0",
                     "--dtype", "bfloat16", "--quiet"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["results"]
    assert entry["source"] == "experiments/paper_1kg.py:smoke" and entry["model"] == "mlp_cnn"
    assert entry["dtype"] == "bfloat16" and entry["diffusion"]["T"] == 50
    assert entry["diffusion"]["process"] == "gaussian"
    assert "train" not in entry and positive(entry["forward"]["seconds_per_call"])
    assert entry["forward"]["mfu"] is None  # CPU, no --peak-tflops


def test_bf16_weights_are_recorded(capsys):
    assert cli.main(["bench", "--model", "mlp_unet", "--model-kwargs", TINY_MLP, "--genes", "16",
                     "--batch", "2", "--what", "forward", "--repeats", "1", "--warmup", "0",
                     "--weights-dtype", "bfloat16", "--quiet"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["results"]
    assert entry["weights_dtype"] == "bfloat16" and entry["dtype"] == "float32"
    assert positive(entry["forward"]["seconds_per_call"])


def test_auto_weights_dtype_is_recorded_as_chosen(capsys):
    """--weights-dtype auto (the default) is recorded as the dtype it chose for this machine."""
    from genodiff_jax.models import weights_dtype

    assert cli.main(["bench", "--model", "mlp_unet", "--model-kwargs", TINY_MLP, "--genes", "16",
                     "--batch", "2", "--what", "forward", "--repeats", "1", "--warmup", "0",
                     "--quiet"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["results"]
    assert entry["weights_dtype"] == weights_dtype("auto") in ("float32", "bfloat16")


def test_models_default_to_the_paper_sizes():
    """Feature models take the paper's recipe and sizes; a token model its family's recipe."""
    specs = bench.resolve_models("all")
    assert [s.name for s in specs] == sorted(MODELS) == ["cnn_unet", "mlp_cnn", "mlp_unet",
                                                          "snp_panel", "snp_unet", "transformer"]
    masked = specs.pop(4)
    assert masked.source == "experiments/masked.py sizes" and masked.process.representation == \
        "tokens" and masked.batch == 16 and masked.kwargs["patch"] == 16
    panel = specs.pop(3)
    assert panel.source == "experiments/panel.py sizes" and panel.process.representation == \
        "panel" and panel.kwargs["scales"] == (8, 64, 512) and panel.process.panel_size == 16
    for spec in specs:
        assert spec.source == "paper sizes"
        model = build_model(spec.name, num_classes=26, **spec.kwargs)
        assert bench.is_paper_size(model), spec.name
        assert spec.process == GaussianProcess("cosine", 500, "eps") and spec.batch == 32
    # mlp_cnn takes experiments/base.py's MLP_CNN_PAPER, which equals the module's defaults
    from experiments.base import MLP_CNN_PAPER

    mlp_cnn = next(s for s in specs if s.name == "mlp_cnn")
    assert mlp_cnn.kwargs == MLP_CNN_PAPER
    default = bench.model_fields(build_model("mlp_cnn", num_classes=26))
    assert {k: default[k] for k in MLP_CNN_PAPER} == json.loads(json.dumps(MLP_CNN_PAPER))


def test_model_kwargs_flat_or_per_model():
    a, b = bench.resolve_models("mlp_unet,transformer", model_kwargs={
        "mlp_unet": {"widths": [8]}, "transformer": {"depth": 1}})
    assert a.kwargs == {"widths": (8,)} and b.kwargs == {"depth": 1}
    [c] = bench.resolve_models(["cnn_unet"], model_kwargs={"num_groups": 4})
    assert c.kwargs == {"num_groups": 4}


def test_no_ratio_without_a_reference_measured_in_the_same_run(tiny_run):
    """The hard-coded PyTorch figures are gone: a ratio exists only beside a twin timed in the
    same run (`--reference torch`, tests/test_bench_torch.py)."""
    assert not hasattr(bench, "REFERENCE_CPU") and bench.REFERENCES["none"] is None
    [entry] = tiny_run["file"]["results"]
    assert tiny_run["file"]["settings"]["reference"] == "none" and "reference" not in entry
    assert not {"speedup", "ratio", "reference"} & (entry["train"].keys() | entry["forward"].keys())


def test_cost_analysis_in_every_shape():
    class Compiled:
        def __init__(self, analysis):
            self.analysis = analysis

        def cost_analysis(self):
            if isinstance(self.analysis, Exception):
                raise self.analysis
            return self.analysis

    assert bench.flops_per_device(Compiled({"flops": 12.0})) == 12.0
    assert bench.flops_per_device(Compiled([{"flops": 7.0}])) == 7.0
    assert bench.flops_per_device(Compiled([])) is None
    assert bench.flops_per_device(Compiled(None)) is None
    assert bench.flops_per_device(Compiled({"bytes accessed": 3.0})) is None
    assert bench.flops_per_device(Compiled(NotImplementedError())) is None


def test_peak_flops_table():
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "float32") == 494.7
    assert bench.peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.5
    assert bench.peak_tflops("NVIDIA H200", "bfloat16") == 989.4
    assert bench.peak_tflops("NVIDIA H100 NVL", "bfloat16") is None
    assert bench.peak_tflops("cpu", "float32") is None


@pytest.mark.parametrize("threshold", [0, 7, 8, 9, 31, 32, 33, 100, 1000, 1024, 5000, 10**6])
@pytest.mark.parametrize("start", [8, 32, 256])
def test_largest_fitting_batch_search(threshold, start):
    """Doubling / halving from `start`, then bisection: never above what fits, within 1/8 of the
    largest fitting multiple of the granule, and a logarithmic number of probes."""
    probes = []

    def fits(batch):
        probes.append(batch)
        return batch <= threshold

    found = bench.largest_fitting(fits, 8, start, cap=65536)
    best = min(threshold // 8 * 8, 65536)
    if best < 8:
        assert found is None
        return
    assert found % 8 == 0 and found <= best and best - found <= max(8, found // bench.REFINE)
    assert len(probes) == len(set(probes)) <= 2 * math.log2(65536 / 8) + 2
    assert all(b % 8 == 0 and 8 <= b <= 65536 for b in probes)


def test_batch_max_takes_the_largest_batch_that_fits_the_budget(capsys):
    """On CPU the budget comes from --memory-limit-gb; XLA's memory analysis of each probe (the
    train step compiled on abstract inputs) decides what fits. The limit puts the budget between
    the plans of batches 40 and 48 (measured: 9.18 and 10.51 MB), so the search takes four probes
    (32, 64, 48, 40) of ~4 s each, where 0.05 GB took eight."""
    assert cli.main(["bench", "--model", "mlp_unet", "--model-kwargs", TINY_MLP, "--genes", "512",
                     "--batch", "max", "--memory-limit-gb", "0.0102", "--what", "train,forward",
                     "--repeats", "1", "--warmup", "0", "--quiet"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["results"]
    search = entry["batch_search"]
    budget = search["budget_bytes_per_device"]
    assert search["free_from"] == "--memory-limit-gb" and search["granule"] == 8
    assert budget == int(bench.FIT_FRACTION * int(0.0102 * 2**30))
    probes = sorted((p["batch"], p["bytes_per_device"], p["fits"]) for p in search["probes"])
    assert probes[0][0] == 32  # searched from the recipe's batch
    assert all(fits == (needed <= budget) for _, needed, fits in probes)
    # a bigger batch needs more memory, and the search saw both sides of the budget
    assert [needed for _, needed, _ in probes] == sorted(needed for _, needed, _ in probes)
    assert probes[0][2] and not probes[-1][2]
    largest_fit = max(b for b, _, fits in probes if fits)
    smallest_miss = min(b for b, _, fits in probes if not fits)
    assert entry["batch"] == largest_fit and smallest_miss - largest_fit <= max(8, largest_fit // 8)
    assert entry["train"]["loss_finite"]
    assert entry["train"]["examples_per_s"] == pytest.approx(
        entry["batch"] / entry["train"]["seconds_per_step"])
    assert positive(entry["forward"]["seconds_per_call"])


def test_the_gpu_script_runs_end_to_end_at_a_tiny_size(tmp_path):
    """benchmarks/bench_gpu.sh with every size overridden: the commands a GPU session will run.
    The memory limit puts `--batch max`'s budget between the plans of batches 40 and 48 (measured:
    0.74 and 0.85 MB), four probes where 0.004 GB took eight."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(tmp_path), "DTYPES": "float32", "N": "6", "ANCESTRAL_STEPS": "2",
           "DPM_STEPS": "2",
           "MODEL_ARGS": f"--model mlp_unet --model-kwargs {TINY_MLP.replace(' ', '')} "
                         "--genes 32 --classes 3",
           "EXTRA_ARGS": "--memory-limit-gb 0.00082 --quiet --repeats 1 --warmup 0"}
    run = subprocess.run(["bash", str(root / "benchmarks/bench_gpu.sh")], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    written = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert sorted(written) == ["gpu_mlp_cnn_float32_ancestral2.json",
                               "gpu_mlp_cnn_float32_b32.json", "gpu_mlp_cnn_float32_bmax.json",
                               "gpu_mlp_cnn_float32_dpmpp2.json"]
    [small] = written["gpu_mlp_cnn_float32_b32.json"]["results"]
    [big] = written["gpu_mlp_cnn_float32_bmax.json"]["results"]
    assert small["batch"] == 32 and big["batch"] > 32 and "batch_search" in big
    for entry in (small, big):
        assert entry["train"]["loss_finite"] and positive(entry["forward"]["seconds_per_call"])
    for name, sampler in (("ancestral2", "ancestral"), ("dpmpp2", "dpmpp")):
        [entry] = written[f"gpu_mlp_cnn_float32_{name}.json"]["results"]
        assert entry["classes"] == 3 and list(entry["sample"]) == [sampler]
        assert entry["sample"][sampler]["model_calls_per_step"] == 2  # guidance 0.1


def test_the_old_gpu_script_path_forwards_its_arguments(tmp_path):
    """experiments/bench_gpu.sh (named by outside docs) runs benchmarks/bench_gpu.sh, from any
    working directory; a stand-in `genodiff` records the commands instead of running them."""
    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "genodiff"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(tmp_path / "out"), "DTYPES": "float32"}
    run = subprocess.run(["bash", str(root / "experiments/bench_gpu.sh")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    calls = log.read_text().splitlines()
    assert len(calls) == 4 and all(c.startswith("bench --model mlp_cnn") for c in calls)
    assert calls[0].endswith(f"--json {tmp_path}/out/gpu_mlp_cnn_float32_b32.json")


@pytest.mark.parametrize("args, message", [
    (["--model", "unet9000"], "unknown model unet9000"),
    (["--model", "mlp_unet", "--batch", "max"], "report no memory limit; pass --memory-limit-gb"),
    (["--model", "mlp_unet", "--batch", "lots"], "--batch must be an integer or max"),
    (["--model", "mlp_unet", "--batch", "max", "--memory-limit-gb", "0"],
     "--memory-limit-gb must be > 0"),
    (["--model", "mlp_unet", "--model-kwargs", TINY_MLP, "--genes", "16", "--batch", "max",
      "--memory-limit-gb", "1e-6"], "at batch 8 plans"),
    (["--model", "mlp_unet", "--model-kwargs", "{widths: 3"], "not valid JSON"),
    (["--model", "mlp_unet", "--model-kwargs", "[1, 2]"], "must be a JSON object"),
    (["--model", "mlp_unet", "--model-kwargs", '{"wodths": [8]}'], "bad --model-kwargs"),
    (["--model", "transformer", "--genes", "20"], "must be divisible by 16"),
    (["--model", "cnn_unet", "--genes", "100"], "must be divisible by 128"),
    (["--model", "mlp_unet", "--what", "train,speed"], "unknown section speed"),
    (["--model", "mlp_unet", "--what", "sample", "--sampler", "euler"], "unknown sampler euler"),
    (["--model", "mlp_unet", "--what", "sample", "--steps", "501"],
     "--steps: sampling steps must be in [1, T = 500]"),
    (["--model", "mlp_unet", "--what", "sample", "--sampler", "ddim", "--sampler-options",
      "eta=0.5,bogus=1"], "--sampler-options: sampler 'ddim' takes no option bogus"),
    (["--model", "mlp_unet", "--what", "sample", "--sampler-options", "eta"],
     "--sampler-options: expected key=value"),
    (["--model", "mlp_unet", "--batch", "0"], "--batch must be >= 1"),
    (["--model", "mlp_unet", "--what", "sample", "--sample-batch", "0"], "--sample-batch must be"),
    (["--model", "mlp_unet", "--peak-tflops", "-1"], "--peak-tflops must be > 0"),
    (["--model", "mlp_unet", "--reference", "numpy"],
     "--reference must be one of none, torch, got 'numpy'"),
    (["--model", "mlp_unet", "--reference", "torch", "--dtype", "bfloat16"],
     "--reference torch compares float32 models; --dtype is bfloat16"),
    (["--model", "mlp_unet", "--num-devices", "64"], "are visible"),
    (["--config", "experiments/nope.py"], "no such config file"),
    (["--config", "experiments/masked.py:smoke", "--genes", "64"],
     "--genes does not apply to snp_unet (tokens; shape flags: --window)"),
    (["--config", "experiments/masked.py:smoke", "--components", "4", "--what", "sample"],
     "--components does not apply to snp_unet"),
    (["--model", "mlp_unet", "--window", "256"], "--window does not apply to mlp_unet (features"),
    (["--config", "experiments/masked.py:smoke", "--window", "0"], "--window must be >= 1"),
    (["--config", "experiments/masked.py:smoke", "--model-kwargs", TINY_SNP, "--window", "64",
      "--batch", "max", "--memory-limit-gb", "1e-6"], "snp_unet's train step at batch 8 plans"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capfd, args, message):
    out = tmp_path / "b.json"
    assert cli.main(["bench", *args, "--quiet", "--json", str(out)]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("genodiff bench: error:") and message in err and "\n" not in err
    assert not out.exists()
