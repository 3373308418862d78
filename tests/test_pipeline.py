"""The whole command line end to end on the tiny simulated cohort:
simulate, prepare, train, sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cyvcf2 import VCF

from genodiff_jax import cli
from genodiff_jax.data import io, tables


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    cache = root / "cache"
    mp = pytest.MonkeyPatch()
    mp.setenv("GENODIFF_CACHE", str(cache))
    assert cli.main(["simulate", "--preset", "tiny", "--out", str(root / "cohort"), "--quiet"]) == 0
    assert cli.main(["prepare", "--quiet", "--vcf", str(root / "cohort" / "cohort.vcf.gz"),
                     "--panel", str(root / "cohort" / "cohort.panel"),
                     "--genes", str(root / "cohort" / "genes.bed"),
                     "--out", str(root / "data")]) == 0
    assert cli.main(["train", "--data", str(root / "data"), "--workdir", str(root / "train"),
                     "--config", "experiments/demo.py:smoke", "--quiet"]) == 0
    yield root
    mp.undo()


def test_train_leaves_the_contracted_files(trained_run):
    work = trained_run / "train"
    assert (work / "config.json").is_file() and (work / "checkpoints").is_dir()
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 20 and np.isfinite(lines[-1]["loss"])
    assert any("val_recon" in line for line in lines)


@pytest.mark.parametrize("sampler,options,calling,weights", [
    ("ddim", "eta=0.5", "round", "float32"), ("dpmpp", "", "frequency", "bfloat16")])
def test_sample_writes_a_cohort_that_reads_back(trained_run, sampler, options, calling, weights,
                                                capsys):
    out = trained_run / f"syn_{sampler}"
    assert cli.main(["sample", "--workdir", str(trained_run / "train"), "--n", "12", "--out",
                     str(out), "--sampler", sampler, "--steps", "5", "--calling", calling,
                     "--labels", "uniform", "--plink", "--weights-dtype", weights,
                     "--sampler-options", options, "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 12 and summary["weights_dtype"] == weights
    # The run config's clip_x0 follows the sampler; options asked for are the sampler's own.
    assert set(summary["sampler_options"]) == ({"clip_x0", "eta"} if options else {"clip_x0"})
    vcf = VCF(str(out / "synthetic.vcf.gz"))
    assert vcf.samples == [f"SYN{i:06d}" for i in range(1, 13)]
    variants = np.load(trained_run / "data" / "variants.npz")
    records = list(vcf)
    assert len(records) == len(variants["pos"])
    assert [r.POS for r in records[:5]] == variants["pos"][:5].tolist()
    calls = np.stack([r.gt_types for r in records], axis=1)  # HOM_REF 0, HET 1, HOM_ALT 3
    calls = np.where(calls == 3, 2, calls)
    plink = io.read_plink(out / "synthetic.bed", progress=False)
    assert set(np.unique(calls)) <= {0, 1, 2}
    panel = tables.read_panel(out / "synthetic.panel")
    assert list(panel.samples) == vcf.samples and set(panel.columns) == {"pop"}
    assert sorted(np.unique(panel.columns["pop"], return_counts=True)[1]) == [4, 4, 4]
    features = np.load(out / "features.npz")
    assert features["features"].shape[0] == 12
    # x0 predictions are clipped to the training range by default (few-step DDIM/DPM++ diverge
    # at the cosine schedule's alpha ~ 1e-4 end otherwise), so samples stay inside it.
    from genodiff_jax.data.loader import load_prepared

    bound = np.abs(load_prepared(trained_run / "data").train.features).max()
    assert summary["sampler_options"]["clip_x0"] == pytest.approx(bound)
    assert np.abs(features["features"]).max() <= bound + 1e-4
    # PLINK drops monomorphic sites on read; what remains equals the VCF calls.
    key = np.char.add(np.char.add(variants["chrom"].astype(str), ":"), variants["pos"].astype(str))
    kept = np.char.add(np.char.add(plink.variants.chrom.astype(str), ":"),
                       plink.variants.pos.astype(str))
    keep = np.isin(key, kept)
    np.testing.assert_array_equal(plink.dosages, calls[:, keep])


@pytest.mark.parametrize("args,message", [
    (["--sampler", "euler"], "unknown sampler 'euler'"),
    (["--sampler", "ancestral", "--sampler-options", "eta=1"], "takes no option eta"),
    (["--sampler-options", "eta"], "expected key=value"),
    (["--steps", "0"], "steps must be in [1, T = 50]"),
])
def test_bad_sampler_settings_are_one_clean_line(trained_run, tmp_path, capfd, args, message):
    rc = cli.main(["sample", "--workdir", str(trained_run / "train"), "--n", "3", "--out",
                   str(tmp_path / "o"), "--quiet", *args])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_sample_with_a_bad_workdir_is_one_clean_line(tmp_path, capfd):
    rc = cli.main(["sample", "--workdir", str(tmp_path / "none"), "--n", "3", "--out",
                   str(tmp_path / "o")])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc != 0 and len(err) == 1 and "none" in err[0] and "not a training work dir" in err[0]
    assert not (tmp_path / "o").exists()
