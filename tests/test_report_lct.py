"""The report's references on the real 1000 Genomes LCT region (../shared/data), behaving as the
field expects: independent sites lose LD, copies leak, the codec round trip and its callers, the
two-sample test, SNP recovery and the longest identical runs. Apart from test_report.py so the
two test processes (`--dist loadfile`) can take them side by side."""

from __future__ import annotations

import numpy as np
import pytest

from genodiff_jax import cli
from genodiff_jax.eval import report as R
from genodiff_jax.eval.sections import SECTIONS as REGISTERED_SECTIONS
from genodiff_jax.eval.sections import EvalContext


@pytest.fixture(scope="module")
def lct(shared_data, tmp_path_factory):
    from genodiff_jax.data.loader import load_prepared

    out = tmp_path_factory.mktemp("lct_eval") / "data"
    assert cli.main(["prepare", "--quiet", "--vcf", str(shared_data / "1kg_lct_chr2.vcf.gz"),
                     "--panel", str(shared_data / "1kg_lct_chr2.panel"), "--genes",
                     str(shared_data / "genes_grch37.bed"), "--out", str(out),
                     "--label", "super_pop"]) == 0
    data = load_prepared(out)
    return data, R.real_calls(data)


def test_lct_references_independent_sites_lose_ld_and_copies_leak(lct):
    data, calls = lct
    settings = R.EvalSettings(max_nnaa=400)
    test = R.Generator(calls[data.test.index], data.test.features, data.test.labels)
    gens = R.build_generators(data, test, calls, settings)  # "model" = a real held-out split here
    fid = REGISTERED_SECTIONS["fidelity"].compute(EvalContext(
        data, calls, {k: gens[k] for k in ("real_test", "independent_sites")}, settings))
    ld_real, ld_indep = fid["real_test"]["ld"]["r"], fid["independent_sites"]["ld"]["r"]
    # Measured: 0.80 for the real test split, 0.09 for independent sites (LD destroyed).
    assert ld_real > 0.7 and ld_indep < ld_real / 3, (ld_real, ld_indep)


def test_lct_privacy_loss_sees_copies_and_the_codec_round_trip_scores_both_callers(lct):
    """A cohort of the report's size (2504 people, as experiments/lct_1kg.sh samples): copies of
    the training split read a privacy loss near 0.5 (0.03-0.09 when the training side was a random
    subset of the test split's size), the ideal about 0. Real people through the codec and back:
    frequency calling is harder to tell from real people than rounding, but loses LD; hybrid keeps
    round's LD."""
    from genodiff_jax.eval.popgen import ld_correlation

    data, calls = lct
    settings = R.EvalSettings(references=("real_test", "train_copies", "codec_roundtrip"))
    labels = np.concatenate([data.train.labels, data.test.labels])
    stand_in = R.Generator(calls, np.zeros((len(calls), *data.mask.shape), np.float32), labels)
    gens = R.build_generators(data, stand_in, calls, settings)
    nn = REGISTERED_SECTIONS["nnaa"].compute(EvalContext(
        data, calls, {k: gens[k] for k in ("real_test", "train_copies")}, settings))
    for space in ("genotypes", "features"):
        # Measured: copies 0.427 (genotypes) and 0.481 (features); the ideal -0.004 and -0.010.
        assert nn[space]["train_copies"]["privacy_loss"] >= 0.4, nn[space]["train_copies"]
        assert nn[space]["train_copies"]["n"] == len(data.train)
        assert abs(nn[space]["real_test"]["privacy_loss"]) < 0.05, nn[space]["real_test"]
    trips = {k: gens[f"codec_roundtrip_{k}"] for k in ("round", "frequency", "hybrid")}
    two = REGISTERED_SECTIONS["two_sample"].compute(EvalContext(
        data, calls, {f"codec_roundtrip_{k}": g for k, g in trips.items()}, settings))
    ld = {k: ld_correlation(calls[data.train.index], g.calls, window=settings.ld_window)["r"]
          for k, g in trips.items()}
    # Measured: two-sample AUC 0.969 (round) vs 0.601 (frequency); LD r 0.760 vs 0.342 (the
    # real test split: 0.796).
    assert two["codec_roundtrip_frequency"]["auc"] < 0.7 < 0.9 < two["codec_roundtrip_round"]["auc"]
    assert ld["round"] > 0.7 > 0.5 > ld["frequency"], ld
    # hybrid (the default) calls the ~8 % of variants the codec keeps by frequency: LD stays
    # round's, and so does the two-sample AUC (the representation's limit, not the caller's).
    assert ld["hybrid"] > ld["round"] - 0.03, ld
    assert two["codec_roundtrip_hybrid"]["auc"] > 0.9, two["codec_roundtrip_hybrid"]


@pytest.mark.xla_optimized
def test_lct_two_sample_test_snp_recovery_and_longest_runs_of_the_references(lct):
    """Prints the new sections' figures for the references on LCT and their times (35-45 s on a
    shared 2-core machine, plus the LCT fixture); the stand-in "model" is the training split, so
    the references match it in size."""
    import time

    from genodiff_jax.eval.logreg import snp_accuracy, snp_recovery

    data, calls = lct
    train, test = calls[data.train.index], calls[data.test.index]
    settings = R.EvalSettings(mosaic_segments=(20, 500), max_run_people=150, references=(
        "real_test", "independent_sites", "train_copies", "mosaic"))
    stand_in = R.Generator(train, data.train.features, data.train.labels, data.tokens("train"))
    gens = R.build_generators(data, stand_in, calls, settings)
    del gens["model"]
    ctx = EvalContext(data, calls, gens, settings)
    seconds = {}
    t0 = time.perf_counter()
    two = REGISTERED_SECTIONS["two_sample"].compute(ctx)
    seconds["two_sample"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = REGISTERED_SECTIONS["haplotype_privacy"].compute(ctx)
    seconds["haplotype_privacy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    a_real = snp_accuracy(train, data.train.labels, test, data.test.labels)
    copies = gens["train_copies"]
    snp = snp_recovery(a_real, copies.calls, copies.labels, test, data.test.labels)
    seconds["snp_logreg (2 fits)"] = time.perf_counter() - t0
    for name in gens:
        r = runs[name]
        print(f"{name:18s} two-sample AUC {two[name]['auc']:.3f} +- {two[name]['auc_std']:.3f}"
              f"  longest run ({r['unit']}) median {r['median']:g} p99 {r['p99']:g} "
              f"whole region {r['share_full_length']:.2f}")
    print(f"SNP LR: a_real {a_real:.3f}, train_copies recovery {snp['recovery_mean']:.3f}")
    print("seconds", {k: round(v, 1) for k, v in seconds.items()})
    n_sites = calls.shape[1]
    # Measured: real_test 0.474, independent_sites 0.604, mosaics 0.58-0.61, train_copies 0.58
    # (people repeated among the copies give each other away across folds).
    assert abs(two["real_test"]["auc"] - 0.5) < 0.06
    assert two["independent_sites"]["auc"] > two["real_test"]["auc"] + 0.05
    assert runs["train_copies"]["median"] == runs["train_copies"]["max"] == n_sites
    # LCT is a region of long shared haplotypes: a third of held-out people share a whole one.
    assert runs["real_test"]["share_full_length"] < 0.6 and runs["real_test"]["median"] > 1000
    assert runs["mosaic_20"]["median"] < runs["mosaic_500"]["median"] < n_sites
    assert runs["independent_sites"]["unit"] == "genotypes"
    assert snp["recovery_mean"] == pytest.approx(1.0, abs=0.05) and 0.75 < a_real < 0.95
