"""`genodiff sweep` on tiny runs of both families: the grid, the panel, the files, the output rules.

The runs are the demo and masked configs' `:smoke` variants with an even smaller denoiser (one
level, stock layers) and 4 training steps (`SMALL_*`): training and every cell's sampler program
are compiled, and the smoke models' compile times (the masked smoke run alone takes about a
minute of CPU to train) would dominate. The cohort is random
(like conftest's `small_cohort`), so its numbers mean nothing; the tests check shapes, ranges and
rules.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from genodiff_jax import cli
from genodiff_jax.atomic import read_marker
from genodiff_jax.models import weights_dtype
from genodiff_jax.sweep import (
    PANEL,
    SweepSettings,
    frechet_distance,
    steps_within,
    sweep_workdir,
)

SMALL_GAUSSIAN = {"model.name": "mlp_unet", "model.ops": "stock",
                  "model.kwargs": {"widths": (16,), "bottleneck": 8, "num_groups": 4},
                  "train.num_steps": 4, "eval.every_steps": 4, "checkpoint.every_steps": 4,
                  "checkpoint.async_save": False, "log.every_steps": 2, "log.tensorboard": False}
SMALL_MASKED = {"model.ops": "stock",
                "model.kwargs": {"patch": 2, "snp_width": 8, "distance_dim": 8, "channels": (8,),
                                 "num_res_blocks": 0, "num_heads": 1, "head_channels": 8,
                                 "num_groups": 4, "dropout": 0.0},
                "train.num_steps": 4, "eval.every_steps": 4, "checkpoint.every_steps": 4,
                "checkpoint.async_save": False, "log.every_steps": 2, "log.tensorboard": False}


def write_cohort(folder):
    """40 phased people of 4 populations, 300 SNPs on two chromosomes, 4 genes."""
    from genodiff_jax.data import io, tables, writers

    rng = np.random.default_rng(7)
    n, s = 40, 300
    pops = np.repeat(["AAA", "BBB", "CCC", "DDD"], 10)
    freqs = np.repeat(rng.uniform(0.05, 0.6, size=(4, s)), 10, axis=0)
    haps = (rng.random((n, s, 2)) < freqs[:, :, None]).astype(np.int8)
    pos = np.concatenate([np.arange(200) * 100 + 1000, np.arange(100) * 100 + 1000])
    variants = io.Variants(np.array(["1"] * 200 + ["2"] * 100), pos.astype(np.int64),
                           np.array([f"rs{i}" for i in range(s)]), np.array(["A"] * s),
                           np.array(["G"] * s))
    samples = [f"S{i:03d}" for i in range(n)]
    writers.write_vcf(folder / "c.vcf.gz", variants, samples, haps, phased=True)
    tables.write_panel(folder / "c.panel", samples, {"pop": pops})
    tables.write_bed(folder / "g.bed", ["1", "1", "1", "2"], [900, 6000, 12000, 500],
                     [5000, 11000, 21500, 12000], ["G1", "G2", "G3", "G4"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The prepared dataset's folder; each family's run is trained when a test first asks."""
    root = tmp_path_factory.mktemp("sweep")
    write_cohort(root)
    assert cli.main(["prepare", "--quiet", "--vcf", str(root / "c.vcf.gz"), "--panel",
                     str(root / "c.panel"), "--genes", str(root / "g.bed"), "--test-fraction",
                     "0.25", "--out", str(root / "data")]) == 0
    return root


@pytest.fixture(scope="module")
def gauss(runs):
    from genodiff_jax.train.loop import run_training

    run_training(runs / "data", runs / "gauss", "experiments/demo.py:smoke",
                 overrides=SMALL_GAUSSIAN, progress=False)
    return runs / "gauss"


@pytest.fixture(scope="module")
def masked(runs):
    from genodiff_jax.train.loop import run_training

    run_training(runs / "data", runs / "masked", "experiments/masked.py:smoke",
                 overrides=SMALL_MASKED, progress=False)
    return runs / "masked"


def check_numbers(row: dict) -> None:
    """Every panel headline is there, finite and inside its measure's range."""
    for name, measure in PANEL.items():
        value = row[name]
        assert value is not None and math.isfinite(value), (name, row)
        assert (measure.lo is None or value >= measure.lo - 1e-9) and \
            (measure.hi is None or value <= measure.hi + 1e-9), (name, value)


def test_a_gaussian_sweep_writes_every_cell_and_the_files(gauss, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    settings = SweepSettings(samplers=("ancestral", "ddim"), steps=(10, 3), n=10)
    result = sweep_workdir(gauss, out, settings)
    cells = result["cells"]
    assert [(c["sampler"], c["steps"]) for c in cells] == [
        ("ancestral", 3), ("ancestral", 10), ("ddim", 3), ("ddim", 10)]
    assert result["family"] == "features" and result["n"] == 10
    assert result["settings"]["calling"] == "hybrid"  # the calling module's default
    assert result["settings"]["weights_dtype"] == weights_dtype("auto")  # chosen for this CPU
    for cell in cells:
        assert cell["error"] is None and cell["guidance"] == pytest.approx(0.1)
        assert cell["temperature"] is None and "clip_x0" in cell["options"]
        assert cell["sample_s"] >= 0 and cell["compile_s"] >= 0
        check_numbers(cell)
    # A new program per (sampler, steps): JAX's compile events are seen (a rename would give 0).
    assert cells[0]["compile_s"] > 0
    check_numbers(result["reference"])
    assert result["reference"]["name"] == "real_train"
    table = result["convergence"]["rows"]
    assert [r["curve"] for r in table] == ["ancestral", "ddim"]
    assert all(r[name] in (3, 10, None) for r in table for name in PANEL)
    assert result["dataset_fingerprint"] and result["machine"]["backend"] == "cpu"

    files = {p.name for p in out.iterdir()}
    assert {"sweep.json", "sweep.csv", "convergence.csv",
            *(f"sweep_{name}.png" for name in PANEL)} <= files
    assert read_marker(out)["kind"] == "sweep"
    assert json.loads((out / "sweep.json").read_text())["cells"] == cells
    with open(out / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {"sampler", "steps", "compile_s", "sample_s", *PANEL} <= set(rows[0])

    # An earlier sweep may be replaced (the work dir never: below). The guidance weight is traced:
    # the second weight's cell runs the first one's program, compiling nothing. A cell whose
    # sampler diverges (stood in for at w = 9) keeps its error and the sweep goes on.
    from genodiff_jax.sampling.cohort import NonFiniteSampleError
    from genodiff_jax.sweep import run

    def diverging(trained, data, cell, *args, **kwargs):
        if cell.guidance == 9.0:
            raise NonFiniteSampleError(1, 10, 0, 2, 3)
        return sample_cell(trained, data, cell, *args, **kwargs)

    sample_cell = run.sample_cell
    monkeypatch.setattr(run, "sample_cell", diverging)
    again = sweep_workdir(gauss, out, SweepSettings(
        samplers=("ancestral",), steps=(3,), guidance=(0.1, 0.5, 9.0), n=10, reference=False))
    assert [(c["steps"], c["guidance"]) for c in again["cells"]] == [(3, 0.1), (3, 0.5), (3, 9.0)]
    assert again["cells"][1]["compile_s"] < 0.25 * again["cells"][0]["compile_s"]
    failed = again["cells"][2]
    assert "NaN or inf from sampler step 2" in failed["error"] and "nnaa" not in failed
    assert [(r["curve"], r["nnaa"]) for r in again["convergence"]["rows"]] == [
        ("ancestral w=0.1", 3), ("ancestral w=0.5", 3), ("ancestral w=9", None)]
    assert json.loads((out / "sweep.json").read_text())["reference"] is None
    with open(out / "sweep.csv") as fh:
        assert [row["error"] != "" for row in csv.DictReader(fh)] == [False, False, True]


def test_a_masked_sweep_crosses_steps_and_temperatures(masked, tmp_path):
    result = sweep_workdir(masked, tmp_path / "sweep",
                           SweepSettings(steps=(2, 4), temperatures=(0.8, 1.0),
                                         samplers=("ancestral",), weights_dtype="bfloat16"))
    assert result["family"] == "tokens" and result["settings"]["calling"] is None
    assert result["settings"]["weights_dtype"] == "bfloat16"  # the SNP U-Net's inference form
    assert sorted((c["steps"], c["temperature"]) for c in result["cells"]) == [
        (2, 0.8), (2, 1.0), (4, 0.8), (4, 1.0)]
    for cell in result["cells"]:
        assert cell["options"]["temperature"] == cell["temperature"]
        check_numbers(cell)  # frechet too: the codec encodes the tokens' calls
    assert [r["curve"] for r in result["convergence"]["rows"]] == [
        "ancestral T=0.8", "ancestral T=1"]


@pytest.mark.parametrize("args,message", [
    (["--samplers", "ancestral,no_such"], "unknown sampler 'no_such'"),
    (["--steps", "5,x"], "--steps: expected comma-separated integers"),
    (["--guidance", "0.1,nan"], "--guidance must be a finite number"),
    (["--temperatures", "0.5"], "--temperatures: none of the samplers"),
])
def test_bad_settings_are_one_line(gauss, tmp_path, capfd, args, message):
    rc = cli.main(["sweep", "--workdir", str(gauss), "--out", str(tmp_path / "o"),
                   "--quiet", *args])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_the_work_dir_is_never_the_output(gauss, capfd):
    before = sorted(p.name for p in gauss.iterdir())
    rc = cli.main(["sweep", "--workdir", str(gauss), "--out", str(gauss), "--overwrite",
                   "--quiet"])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and "input" in err[0], err
    assert sorted(p.name for p in gauss.iterdir()) == before


def test_frechet_distance_matches_the_matrix_square_root():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 6)), 1.5 * rng.normal(size=(30, 6)) + 0.3
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(s_a) + np.trace(s_b)
                - 2 * np.trace(sqrtm(s_a @ s_b).real))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_steps_within_is_where_a_curve_settles_for_good():
    assert steps_within([(5, 0.5), (10, 0.9), (25, 1.0), (50, 1.0)], 0.01) == 25
    assert steps_within([(5, 1.0), (10, 0.5), (25, 1.0)], 0.01) == 25  # touching once is not it
    assert steps_within([(5, 0.995), (10, 1.0)], 0.01) == 5
    assert steps_within([(5, 1.0), (10, None)], 0.01) is None
