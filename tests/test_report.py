"""`genodiff evaluate` / `genodiff run`: every section, for the model and each reference generator;
sections found by name (one registered here alone runs and reports); genotype-only cohorts;
haplotypes carried by the generators (the references on the real LCT region:
test_report_lct.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genodiff_jax import cli
from genodiff_jax.errors import InputError
from genodiff_jax.eval import report as R
from genodiff_jax.eval.sections import SECTIONS as REGISTERED_SECTIONS
from genodiff_jax.eval.sections import Section

SECTIONS = ("transfer", "nnaa", "fidelity", "privacy", "two_sample", "haplotype_privacy")
GENERATORS = ["gene_pca", "masked", "real_test", "independent_sites", "train_copies",
              "mosaic_100", "codec_roundtrip_round", "codec_roundtrip_frequency",
              "codec_roundtrip_hybrid"]


def test_run_on_a_tiny_cohort_writes_a_report_with_every_section(tmp_path, monkeypatch, capsys):
    """`genodiff run` (`make demo`) end to end, on the `tiny` preset (60 people, 1361 SNPs): the
    demo preset's own run took 7 of the suite's 22 minutes, mostly sampling its 10,546 SNPs. The
    panel family is left out (`--panel-config none`; with it this test took 178 s of the suite,
    without 84): `run` trains and samples it by the masked family's code, and tests/test_panel.py
    runs it through the command line."""
    monkeypatch.setenv("GENODIFF_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert cli.main(["run", "--out", str(out), "--preset", "tiny", "--config",
                     "experiments/demo.py:smoke", "--steps", "10", "--classifiers", "mlp",
                     "--seeds", "1", "--epochs", "3", "--mosaic-segments", "100",
                     "--masked-config", "experiments/demo_masked.py:smoke",
                     "--panel-config", "none", "--quiet"]) == 0
    printed = capsys.readouterr().out  # the summary table
    assert "membership AUC" in printed and "two-sample AUC" in printed
    assert "recovery (SNP LR)" in printed and "longest identical run (p99)" in printed
    report = json.loads((out / "report" / "report.json").read_text())
    for section in SECTIONS:
        assert set(report[section]) >= ({"recovery", "augmentation"} if section == "transfer"
                                        else {"features", "genotypes"} if section == "nnaa"
                                        else set(GENERATORS))
    assert report["generators"] == GENERATORS and report["n_synthetic"] == 60
    assert not (out / "train_panel").exists()
    assert set(report["transfer"]["recovery"]) == set(GENERATORS) - {"real_test"}
    assert report["transfer"]["recovery"]["train_copies"]["snp_logreg"]["recovery_mean"] > 0.9
    copies = report["privacy"]["train_copies"]
    assert copies["identical"]["n_identical"] == 60  # every copy is a training genome
    assert copies["membership"]["auc"] > 0.6
    assert report["privacy"]["real_test"]["membership"]["auc"] is None
    loss = {g: report["nnaa"]["genotypes"][g]["privacy_loss"] for g in GENERATORS}
    # Measured on this cohort (54 training, 6 test people): copies 0.361; the ideal, its 6 test
    # people halved into 3 + 3, 0.104 (on the demo preset, 270 + 30: 0.470 and 0.046).
    assert loss["train_copies"] >= 0.3 and abs(loss["real_test"]) < 0.2, loss
    assert report["fidelity"]["train_copies"]["af"]["overall"]["r"] > 0.99
    runs = report["haplotype_privacy"]
    # Measured on 1361 SNPs: held-out median 681; copies all 1361.
    assert runs["train_copies"]["share_full_length"] == 1.0
    assert runs["real_test"]["median"] < report["n_variants"] == runs["train_copies"]["median"]
    assert runs["gene_pca"]["unit"] == "genotypes" and runs["mosaic_100"]["unit"] == "haplotypes"
    assert runs["masked"]["unit"] == "haplotypes"  # the token family writes phased genotypes
    assert report["two_sample"]["real_test"]["against"] == "real train"
    assert list(report["per_class"]["generators"]) == GENERATORS
    for png in ("af_scatter", "ld_heatmaps", "pca_overlay", "augmentation", "nnaa", "two_sample",
                "longest_runs", "per_class_af", "per_class_confusion"):
        assert (out / "report" / f"{png}.png").stat().st_size > 1000
    html = (out / "report" / "report.html").read_text()
    assert "Summary" in html and "independent_sites" in html and "augmentation.png" in html


def test_evaluate_names_a_missing_synthetic_folder(tmp_path, capfd, small_cohort):
    data = tmp_path / "data"
    assert cli.main(["prepare", "--quiet", "--vcf", str(small_cohort["vcf"]), "--panel",
                     str(small_cohort["panel"]), "--genes", str(small_cohort["bed"]),
                     "--out", str(data)]) == 0
    rc = cli.main(["evaluate", "--data", str(data), "--synthetic", str(tmp_path / "nope"),
                   "--out", str(tmp_path / "r")])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc != 0 and len(err) == 1 and "nope" in err[0] and "not a synthetic cohort" in err[0]
    assert not (tmp_path / "r").exists()


def test_to_json_drops_large_arrays_and_non_finite_values():
    out = R.to_json({"a": np.arange(100), "b": np.float32(1.5), "c": float("nan"),
                     "d": {"e": np.arange(3)}})
    assert out == {"b": 1.5, "c": None, "d": {"e": [0, 1, 2]}}


# -- sections found by name; cohorts written as genotypes only ----------------------------------

@pytest.fixture()
def prepared(tmp_path, small_cohort):
    """The small cohort prepared, and a genotype-only synthetic folder (VCF + panel, no
    features.npz) holding the training genomes, its panel rows in reverse order."""
    from genodiff_jax.data import tables, writers
    from genodiff_jax.data.loader import load_prepared

    data_dir = tmp_path / "data"
    assert cli.main(["prepare", "--quiet", "--vcf", str(small_cohort["vcf"]), "--panel",
                     str(small_cohort["panel"]), "--genes", str(small_cohort["bed"]),
                     "--out", str(data_dir)]) == 0
    data = load_prepared(data_dir)
    train = R.real_calls(data)[data.train.index]
    ids = [f"SYN{i:06d}" for i in range(len(train))]
    folder = tmp_path / "synthetic"
    folder.mkdir()
    writers.write_vcf(folder / "synthetic.vcf.gz", data.variants, ids, train, phased=False)
    names = np.asarray(data.class_names)[data.train.labels]
    tables.write_panel(folder / "synthetic.panel", ids[::-1], {data.summary["label"]: names[::-1]})
    return data, train, folder


def test_load_synthetic_without_features_encodes_calls_and_reads_panel_labels(prepared):
    data, train, folder = prepared
    gen = R.load_synthetic(folder, data)
    np.testing.assert_array_equal(gen.calls, train)
    np.testing.assert_array_equal(gen.labels, data.train.labels)  # matched by sample id
    # Encoded by the dataset's codec: the training genomes give back the prepared features.
    np.testing.assert_allclose(gen.features, data.train.features, atol=1e-5)
    assert gen.labels.dtype == np.int32 and gen.features.dtype == np.float32

    text = (folder / "synthetic.panel").read_text()
    (folder / "synthetic.panel").write_text(text.replace(data.class_names[0], "ZZZ"))
    with pytest.raises(InputError, match="synthetic.panel.*unknown class 'ZZZ'"):
        R.load_synthetic(folder, data)
    # A features.npz whose labels name no class of the dataset is refused, naming the file.
    labels = data.train.labels.copy()
    labels[3] = data.num_classes
    np.savez(folder / "features.npz", features=data.train.features, labels=labels)
    with pytest.raises(InputError, match=f"features.npz.*label {data.num_classes} is outside"):
        R.load_synthetic(folder, data)


def test_evaluate_runs_the_sections_named_on_the_command_line(prepared, tmp_path, capsys):
    data, _, folder = prepared
    out = tmp_path / "report"
    assert cli.main(["evaluate", "--data", str(data.path), "--synthetic", str(folder), "--out",
                     str(out), "--sections", "privacy,fidelity"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line.split() for line in lines if line.split()[:1] == ["generator"])
    # The summary's columns follow the order the sections were asked for.
    assert header == ("generator identical to train membership AUC AF r AF r per class LD r "
                      "LD r at n held-out Fst").split()
    report = json.loads((out / "report.json").read_text())
    assert list(report["seconds"]) == ["privacy", "fidelity"]
    assert "transfer" not in report and "nnaa" not in report
    assert report["privacy"]["model"]["identical"]["n_identical"] == len(data.train)


@pytest.fixture()
def toy_section():
    """A section known to this test file alone: each generator's mean allele frequency."""
    import matplotlib.pyplot as plt

    def compute(ctx):
        return {name: float(gen.calls.mean() / 2) for name, gen in ctx.generators.items()}

    def plots(ctx, result, save):
        fig, ax = plt.subplots()
        ax.bar(range(len(result)), list(result.values()))
        return {"Mean allele frequency": save(fig, "toy.png")}

    def tables(result):
        return [("Toy table", ["generator", "mean AF"], [[g, v] for g, v in result.items()])]

    REGISTERED_SECTIONS.register("toy", Section(
        compute, columns=[("mean AF", lambda result, generator: result[generator])],
        plots=plots, tables=tables))
    yield
    del REGISTERED_SECTIONS["toy"]


def test_a_section_registered_in_a_test_runs_and_is_reported(prepared, tmp_path, toy_section):
    data, train, folder = prepared
    out = tmp_path / "report"
    settings = R.EvalSettings(sections=("fidelity", "toy"), mosaic_segments=(100,))
    report = R.evaluate(data.path, folder, out, settings)
    generators = ["model", "real_test", "independent_sites", "train_copies", "mosaic_100",
                  "codec_roundtrip_round", "codec_roundtrip_frequency", "codec_roundtrip_hybrid"]
    assert report["generators"] == generators
    assert report["toy"]["model"] == pytest.approx(train.mean() / 2)
    assert list(report["seconds"]) == ["fidelity", "toy"] and "transfer" not in report
    assert json.loads((out / "report.json").read_text())["toy"] == report["toy"]
    assert R.summary_header(report) == ["generator", "AF r", "AF r per class", "LD r",
                                        "LD r at n held-out", "Fst", "mean AF"]
    rows = R.summary_rows(report)
    assert [row[0] for row in rows] == generators
    assert [row[-1] for row in rows] == [report["toy"][g] for g in generators]
    html = (out / "report.html").read_text()
    assert "<th>mean AF</th>" in html and "<h2>Toy table</h2>" in html
    assert 'src="toy.png"' in html and 'src="af_scatter.png"' in html
    assert "augmentation.png" not in html and (out / "toy.png").stat().st_size > 1000


def test_generators_carry_haplotypes_and_copies_share_whole_ones(prepared, tmp_path):
    from genodiff_jax.data import writers

    data, train, folder = prepared
    assert R.load_synthetic(folder, data).haplotypes is None  # written unphased
    haplotypes = np.asarray(data.tokens("train"))
    np.testing.assert_array_equal(haplotypes.sum(axis=1), train)
    phased = tmp_path / "phased"
    phased.mkdir()
    ids = [f"SYN{i:06d}" for i in range(len(train))]
    writers.write_vcf(phased / "synthetic.vcf.gz", data.variants, ids,
                      haplotypes.transpose(0, 2, 1), phased=True)
    (phased / "synthetic.panel").write_text((folder / "synthetic.panel").read_text())
    gen = R.load_synthetic(phased, data)
    np.testing.assert_array_equal(gen.haplotypes, haplotypes)

    settings = R.EvalSettings(sections=("two_sample", "haplotype_privacy"), mosaic_segments=(100,))
    report = R.evaluate(data.path, phased, tmp_path / "report", settings)
    assert report["generators"] == ["model", "real_test", "independent_sites", "train_copies",
                                    "mosaic_100", "codec_roundtrip_round",
                                    "codec_roundtrip_frequency", "codec_roundtrip_hybrid"]
    runs, n_sites = report["haplotype_privacy"], train.shape[1]
    for name in ("model", "train_copies"):  # copies of training haplotypes: the whole region
        assert runs[name]["unit"] == "haplotypes" and runs[name]["median"] == n_sites
    # Measured: real held-out median 18 (max 24) SNPs, mosaic_100 median 181, of 300.
    assert runs["real_test"]["max"] < n_sites / 5 < runs["mosaic_100"]["median"] < n_sites
    indep = runs["independent_sites"]  # no haplotypes: genotype runs, marked in the summary
    assert indep["unit"] == "genotypes" and indep["fallback"]
    rows = {row[0]: row[1:] for row in R.summary_rows(report)}  # AUC, median, p99 run, flag
    assert rows["independent_sites"][1].endswith("(genotypes)")
    assert rows["train_copies"][1:] == [n_sites, n_sites, "COPIES MORE (median, p99)"]
    assert runs["model"]["copies_more_than_real"] == ["median", "p99"]
    assert rows["real_test"][3] == "-" and runs["mosaic_100"]["copies_more_than_real"]
    assert all(0 <= report["two_sample"][g]["auc"] <= 1 for g in report["generators"])
    assert (tmp_path / "report" / "longest_runs.png").stat().st_size > 1000
    gens = R.build_generators(data, gen, R.real_calls(data), settings)
    np.testing.assert_array_equal(gens["real_test"].haplotypes, data.tokens("test"))
    before = R.build_generators(data, gen, R.real_calls(data), R.EvalSettings(
        references=("real_test", "independent_sites", "train_copies")))  # as before mosaic
    for name, g in before.items():  # the mosaics draw last: the other references are unchanged
        np.testing.assert_array_equal(g.calls, gens[name].calls)
    assert [name for name, g in gens.items() if g.haplotypes is None] == [
        "independent_sites", "codec_roundtrip_round", "codec_roundtrip_frequency",
        "codec_roundtrip_hybrid"]
    for g in gens.values():
        if g.haplotypes is not None:
            np.testing.assert_array_equal(g.haplotypes.sum(axis=1), g.calls)
