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
    ("ddim", "eta=0.5", "round", "float32"), ("dpmpp", "", "hybrid", "bfloat16")])
def test_sample_writes_a_cohort_that_reads_back(trained_run, sampler, options, calling, weights,
                                                capsys):
    out = trained_run / f"syn_{sampler}"
    assert cli.main(["sample", "--workdir", str(trained_run / "train"), "--n", "12", "--out",
                     str(out), "--sampler", sampler, "--steps", "5", "--calling", calling,
                     "--labels", "uniform", "--plink", "--pgen", "--weights-dtype", weights,
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
    # PLINK 2 keeps every site, unphased (the gene-PCA family calls dosages), the label in .psam.
    import pgenlib

    with pgenlib.PgenReader(str(out / "synthetic.pgen").encode()) as reader:
        assert not reader.hardcall_phase_present()
        pgen = np.empty((reader.get_variant_ct(), 12), np.int8)
        reader.read_range(0, len(pgen), pgen)
    np.testing.assert_array_equal(pgen.T, calls)
    psam = (out / "synthetic.psam").read_text().splitlines()
    rows = (f"{s}\t{p}" for s, p in zip(panel.samples, panel.columns["pop"]))
    assert psam == ["#IID\tpop", *rows]


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


# -- issue 15: nothing lost, nothing silently wrong -----------------------------------------------

def snapshot(folder):
    """Every file under `folder` (hidden ones too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_line(capfd) -> list[str]:
    return [line for line in capfd.readouterr().err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def synthetic(trained_run):
    out = trained_run / "syn_small"
    assert cli.main(["sample", "--workdir", str(trained_run / "train"), "--n", "6", "--steps", "3",
                     "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def other_dataset(trained_run):
    """The same cohort split with another seed: another codec of the same shape."""
    root = trained_run
    out = root / "data_seed7"
    assert cli.main(["prepare", "--quiet", "--vcf", str(root / "cohort" / "cohort.vcf.gz"),
                     "--panel", str(root / "cohort" / "cohort.panel"), "--seed", "7",
                     "--genes", str(root / "cohort" / "genes.bed"), "--out", str(out)]) == 0
    return out


def test_an_output_that_holds_an_input_or_a_run_is_refused_and_nothing_changes(
        trained_run, synthetic, tmp_path, capfd):
    root, work, data = trained_run, str(trained_run / "train"), str(trained_run / "data")
    cohort = root / "cohort"
    prepare = ["prepare", "--quiet", "--vcf", str(cohort / "cohort.vcf.gz"), "--panel",
               str(cohort / "cohort.panel"), "--genes", str(cohort / "genes.bed")]
    (tmp_path / "notes.txt").write_text("a user's notes")
    cases = [
        (["sample", "--workdir", work, "--n", "3", "--out", work, "--overwrite"],
         "is this command's input"),
        (["sample", "--workdir", work, "--n", "3", "--out", data, "--data", data],
         "is this command's input"),
        (["evaluate", "--data", data, "--synthetic", str(synthetic), "--out", str(synthetic),
          "--overwrite"], "is this command's input"),
        ([*prepare, "--out", str(cohort), "--overwrite"], "holds this command's input"),
        (["evaluate", "--data", data, "--synthetic", str(synthetic), "--out", str(cohort),
          "--overwrite"], "holds this command's input"),  # the real genotypes are read too
        ([*prepare, "--out", str(tmp_path)], "a folder of files genodiff did not write"),
        ([*prepare, "--out", str(tmp_path / "notes.txt")], "is an existing file"),
        (["train", "--data", data, "--workdir", str(synthetic), "--config",
          "experiments/demo.py:smoke", "--quiet"], "is a genodiff synthetic folder, not a "
                                                   "training work dir"),
    ]
    for args, message in cases:
        before, mine = snapshot(root), snapshot(tmp_path)
        rc = cli.main(args)
        err = one_line(capfd)
        assert rc == 2 and len(err) == 1 and message in err[0], (args, err)
        assert snapshot(root) == before and snapshot(tmp_path) == mine, args


def test_a_cohort_is_never_used_with_another_datasets_codec(trained_run, synthetic,
                                                             other_dataset, tmp_path, capfd):
    work, data = str(trained_run / "train"), str(trained_run / "data")
    cases = [
        (["evaluate", "--data", str(other_dataset), "--synthetic", str(synthetic), "--out",
          str(tmp_path / "r")], "was sampled from a model of another dataset"),
        (["sample", "--workdir", work, "--data", str(other_dataset), "--n", "3", "--out",
          str(tmp_path / "s")], "is not the dataset this run was trained on"),
        (["train", "--data", str(other_dataset), "--workdir", work, "--config",
          "experiments/demo.py:smoke", "--quiet"], "this run was trained on another dataset"),
    ]
    before = snapshot(trained_run / "train")
    for args, message in cases:
        rc = cli.main(args)
        err = one_line(capfd)
        assert rc == 2 and len(err) == 1 and message in err[0], (args, err)
    assert snapshot(trained_run / "train") == before and not list(tmp_path.iterdir())
    assert json.loads((trained_run / "data" / "summary.json").read_text())["fingerprint"] != \
        json.loads((other_dataset / "summary.json").read_text())["fingerprint"]
    del data


@pytest.mark.parametrize("args,message", [
    (["--n", "0"], "--n must be >= 1, got 0"),
    (["--guidance", "nan"], "--guidance must be a finite number, got nan"),
    (["--steps", "100000"], "--steps: sampling steps must be in [1, T = 50]"),
])
def test_bad_numbers_are_one_line(trained_run, tmp_path, capfd, args, message):
    n = [] if "--n" in args else ["--n", "3"]
    rc = cli.main(["sample", "--workdir", str(trained_run / "train"), "--out",
                   str(tmp_path / "o"), "--quiet", *n, *args])
    err = one_line(capfd)
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_evaluating_a_one_person_cohort_is_one_line(trained_run, tmp_path, capfd):
    out = tmp_path / "one"
    assert cli.main(["sample", "--workdir", str(trained_run / "train"), "--n", "1", "--steps",
                     "2", "--out", str(out), "--quiet"]) == 0
    capfd.readouterr()
    rc = cli.main(["evaluate", "--data", str(trained_run / "data"), "--synthetic", str(out),
                   "--out", str(tmp_path / "report")])
    err = one_line(capfd)
    assert rc == 2 and len(err) == 1, err
    assert "synthetic.vcf.gz: holds 1 genome(s); evaluation compares cohorts and needs at " \
           "least 2" in err[0]
    assert not (tmp_path / "report").exists()


def test_a_truncated_checkpoint_is_one_line_naming_it_and_the_way_on(trained_run, tmp_path,
                                                                    capfd):
    import shutil

    work = tmp_path / "train"
    shutil.copytree(trained_run / "train", work)
    for f in (work / "checkpoints" / "best").rglob("d/*"):
        f.write_bytes(f.read_bytes()[:10])
    rc = cli.main(["sample", "--workdir", str(work), "--n", "3", "--steps", "2", "--out",
                   str(tmp_path / "s"), "--quiet"])
    err = one_line(capfd)
    assert rc == 2 and len(err) == 1, err
    assert f"{work / 'checkpoints' / 'best'}/20: unreadable checkpoint" in err[0]
    assert "--checkpoint latest" in err[0] and not (tmp_path / "s").exists()
    assert cli.main(["sample", "--workdir", str(work), "--n", "3", "--steps", "2", "--out",
                     str(tmp_path / "s"), "--quiet", "--checkpoint", "latest"]) == 0
    for f in (work / "checkpoints" / "latest").rglob("d/*"):
        f.write_bytes(f.read_bytes()[:10])
    before = snapshot(work)
    rc = cli.main(["train", "--data", str(trained_run / "data"), "--workdir", str(work),
                   "--config", "experiments/demo.py:smoke", "--quiet"])
    err = one_line(capfd)
    assert rc == 2 and len(err) == 1, err
    assert f"{work / 'checkpoints' / 'latest'}/20: unreadable checkpoint" in err[0]
    assert "no earlier checkpoint is kept" in err[0] and snapshot(work) == before


def test_ctrl_c_stops_sample_at_once_and_leaves_nothing(trained_run, tmp_path):
    """SIGINT while the compiled sampler runs: exit 130 at once (not when the scan ends), no
    output, no temporary."""
    import re
    import signal
    import subprocess
    import sys
    import threading
    import time

    out = tmp_path / "s"
    # 40 batches of 100 rows x 50 steps: minutes of sampling, so the signal lands mid-scan.
    # A pytest-xdist worker ignores SIGINT, and an ignored signal stays ignored across exec, so
    # the child puts Python's Ctrl-C handler back first, as a process started from a shell has it.
    argv = ["genodiff", "sample", "--workdir", str(trained_run / "train"), "--n", "4000",
            "--batch-size", "100", "--out", str(out)]
    child = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             f"sys.argv = {argv!r}; runpy.run_module('genodiff_jax.cli', run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    seen, started = bytearray(), threading.Event()

    def read() -> None:
        while chunk := proc.stderr.read1(4096):
            seen.extend(chunk)
            if re.search(rb"sampling: +\d+%.*\| *[1-9]\d*/40", bytes(seen)):
                started.set()

    threading.Thread(target=read, daemon=True).start()
    assert started.wait(240), seen.decode(errors="replace")[-2000:]
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
    took = time.monotonic() - sent
    # Idle: 0.1 s; 4.1 s measured while a test suite shared the 2 cores. The whole sampling
    # takes minutes, so 10 s still tells "at once" from "when the scan ends".
    assert rc == 130 and took < 10.0, (rc, took)
    assert b"interrupted; nothing half-written was kept" in bytes(seen)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_diverging_sampler_is_one_line_and_writes_nothing(trained_run, tmp_path, capfd,
                                                            monkeypatch):
    from genodiff_jax.families import gene_pca
    from genodiff_jax.sampling.cohort import NonFiniteSampleError

    def diverges(*args, **kwargs):
        raise NonFiniteSampleError(3, 3, 0, 7, 10)

    monkeypatch.setattr(gene_pca, "generate", diverges)
    rc = cli.main(["sample", "--workdir", str(trained_run / "train"), "--n", "3", "--out",
                   str(tmp_path / "o"), "--quiet"])
    err = one_line(capfd)
    assert rc == 2 and len(err) == 1 and "NaN or inf from sampler step 7 of 10" in err[0], err
    assert not (tmp_path / "o").exists()


# -- issue 27: nothing lost, nothing silently wrong, round two ------------------------------------

def test_round_two_cases_are_one_line_and_change_nothing(trained_run, synthetic, tmp_path,
                                                         capfd):
    """Replacing an earlier output that holds other files or a work dir, --out below a file,
    options that would give a wrong cohort, a work dir of the other family: one line, exit
    non-zero, nothing written or deleted."""
    import shutil

    root, work, data = trained_run, str(trained_run / "train"), str(trained_run / "data")
    cohort = root / "cohort"
    earlier = tmp_path / "earlier"
    shutil.copytree(synthetic, earlier)  # an earlier cohort, with a user's file put inside
    (earlier / "notes.txt").write_text("a user's notes")
    holder = tmp_path / "holder"
    shutil.copytree(synthetic, holder)  # an earlier cohort holding a (copied) work dir
    shutil.copytree(root / "train" / "checkpoints", holder / "run" / "checkpoints")
    (tmp_path / "file.txt").write_text("a file")
    sample = ["sample", "--workdir", work, "--n", "3", "--steps", "2", "--quiet"]
    out = ["--out", str(tmp_path / "new")]
    cases = [
        ([*sample, "--out", str(earlier)], "notes.txt: was not written by genodiff"),
        ([*sample, "--out", str(holder)], "holds a training work dir"),
        ([*sample, "--out", str(holder), "--overwrite"], "holds a training work dir"),
        ([*sample, "--out", str(tmp_path / "file.txt" / "sub"), "--overwrite"],
         "file.txt: is a file, so"),
        (["prepare", "--quiet", "--vcf", str(cohort / "cohort.vcf.gz"), "--panel",
          str(cohort / "cohort.panel"), "--window", "10", "--out",
          str(tmp_path / "file.txt" / "d")], "file.txt: is a file, so"),
        ([*sample, *out, "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        ([*sample, *out, "--labels", "YRI=0,CEU=0"], "label counts sum to 0 people"),
        ([*sample, *out, "--guidance", "1e9"], "--guidance must be in [-1, 100]"),
        ([*sample, *out, "--sampler", "unipc", "--sampler-options", "order=7"],
         "order must be in [1, 3], got 7"),
        ([*sample, *out, "--sampler", "ddim", "--sampler-options", "eta=nan"],
         "eta must be finite, got nan"),
        (["train", "--data", data, "--workdir", work, "--config", "experiments/masked.py:smoke",
          "--quiet"], "its checkpoints are ranked by val_recon, not val_bits"),
    ]
    for args, message in cases:
        before, mine = snapshot(root), snapshot(tmp_path)
        rc = cli.main(args)
        err = one_line(capfd)
        assert rc != 0 and len(err) == 1 and message in err[0], (args, err)
        assert snapshot(root) == before and snapshot(tmp_path) == mine, args
    assert not (tmp_path / "new").exists()
