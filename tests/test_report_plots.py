"""The report a person reads: the per-class section (a cohort whose labels are shifted by one class
matches no class of its own), the small-multiples plots (every image the page names exists, none
wider than 2000 pixels), the summary's row groups and column legend, and the page as headless
Chromium draws it (skipped without Chromium). Runs on the tiny cohort of `tests/conftest.py`
(`small_cohort`: 4 populations, 40 people, 300 SNPs)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genodiff_jax import cli
from genodiff_jax.eval import report as R
from genodiff_jax.eval.sections import DEFAULT_SECTIONS, SECTIONS, EvalContext

ROOT = Path(__file__).resolve().parents[1]
MAX_PLOT_WIDTH = 2000  # pixels


@pytest.fixture()
def prepared(tmp_path, small_cohort):
    """The small cohort prepared and its real calls."""
    from genodiff_jax.data.loader import load_prepared

    data_dir = tmp_path / "data"
    assert cli.main(["prepare", "--quiet", "--vcf", str(small_cohort["vcf"]), "--panel",
                     str(small_cohort["panel"]), "--genes", str(small_cohort["bed"]),
                     "--out", str(data_dir)]) == 0
    data = load_prepared(data_dir)
    return data, R.real_calls(data)


def test_per_class_sees_a_cohort_whose_classes_carry_the_next_label(prepared):
    """Training people with their own labels match every class; the same people labelled one
    class on match none, and the regression trained on them calls each real class the next."""
    from genodiff_jax.eval.popgen import af_correlation

    data, calls = prepared
    train, labels, k = calls[data.train.index], data.train.labels, data.num_classes
    shifted = (labels + 1) % k
    feats = data.train.features
    gens = {"own": R.Generator(train, feats, labels), "shifted": R.Generator(train, feats, shifted)}
    ctx = EvalContext(data, calls, gens, R.EvalSettings(), synthetic=("own", "shifted"))
    result = SECTIONS["per_class"].compute(ctx)
    assert result["af_against"] == "real train" and result["class_names"] == data.class_names
    own, off = result["generators"]["own"], result["generators"]["shifted"]
    assert own["af"]["own_class"] == own["af"]["n_classes"] == k
    assert own["af"]["diagonal_mean"] == pytest.approx(1.0)
    # Synthetic class i holds real class i - 1's people: that is its best match.
    assert off["af"]["own_class"] == 0
    assert off["class_sizes"] == np.bincount(shifted, minlength=k).tolist()
    assert off["af"]["best_match"] == [(i - 1) % k for i in range(k)]
    mean_r = af_correlation(train, train, labels, shifted)["per_population_mean_r"]
    assert off["af"]["diagonal_mean"] == pytest.approx(mean_r)  # the summary's "AF r per class"
    assert off["af"]["diagonal_mean"] < off["af"]["off_diagonal_best_mean"]
    counts = np.asarray(off["confusion"]["counts"])
    assert counts.sum() == len(data.test) and np.trace(counts) == 0
    assert counts.shape == (k, k) and off["confusion"]["balanced_accuracy"] == 0.0
    assert R.summary_header({"settings": {"sections": ["per_class"]}}) == [
        "generator", "own-class AF match", "SNP LR balanced acc"]


def test_report_plots_are_small_multiples_the_page_names_and_sets_the_summary_apart(
        prepared, tmp_path):
    data, calls = prepared
    assert "per_class" in DEFAULT_SECTIONS  # in every report unless --sections drops it
    out = tmp_path / "report"
    settings = R.EvalSettings(sections=("fidelity", "per_class"), mosaic_segments=(100,),
                              references=("real_test", "independent_sites", "train_copies",
                                          "mosaic"))
    folder = _genotype_cohort(data, calls, tmp_path / "synthetic")
    R.evaluate(data.path, {"model_a": folder, "model_b": folder}, out, settings)
    report = json.loads((out / "report.json").read_text())
    per_class = report["per_class"]["generators"]
    assert list(per_class) == report["generators"]
    assert all(v["af"]["own_class"] == data.num_classes for v in per_class.values())
    assert per_class["real_test"]["confusion_trained_on"] == "real train"
    assert len(per_class["model_a"]["af"]["r"]) == data.num_classes  # kept in report.json

    html = (out / "report.html").read_text()
    assert_images_exist_and_fit(out / "report.html")
    for png in ("af_scatter", "ld_heatmaps", "pca_overlay", "per_class_af",
                "per_class_confusion"):
        assert f'src="{png}.png"' in html
    # The summary: the models, then the ideal, then the floors, then the other references.
    groups = re.findall(r'<tr class="group"><td colspan="\d+">([^<]*)</td>', html)
    assert [g.split(":")[0] for g in groups] == ["models", "ideal", "floors", "other references"]
    rows = re.findall(r'<tr class="(\w+)"><td>([^<]*)</td>', html)
    assert rows == [("model", "model_a"), ("model", "model_b"), ("ideal", "real_test"),
                    ("floor", "independent_sites"), ("floor", "train_copies"),
                    ("reference", "mosaic_100")]
    legend = R.summary_legend(report)
    assert set(legend) == set(R.summary_header(report)) - {"generator"}
    assert all(f"<b>{h}</b>" in html for h in legend)
    assert "Per class: AF against real train" in html


def _genotype_cohort(data, calls, folder: Path) -> Path:
    """The training genomes as a genotype-only synthetic folder (VCF + panel)."""
    from genodiff_jax.data import tables, writers

    train = calls[data.train.index]
    ids = [f"SYN{i:06d}" for i in range(len(train))]
    folder.mkdir()
    writers.write_vcf(folder / "synthetic.vcf.gz", data.variants, ids, train, phased=False)
    names = np.asarray(data.class_names)[data.train.labels]
    tables.write_panel(folder / "synthetic.panel", ids, {data.summary["label"]: names})
    return folder


def assert_images_exist_and_fit(html_path: Path) -> None:
    """Every image report.html names is a file beside it, no wider than MAX_PLOT_WIDTH."""
    from PIL import Image

    names = re.findall(r'<img src="([^"]+)"', html_path.read_text())
    assert names
    for name in names:
        path = html_path.parent / name
        assert path.is_file(), name
        with Image.open(path) as image:
            assert image.width <= MAX_PLOT_WIDTH, (name, image.size)


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="no headless Chromium (Debian: apt-get install chromium)")
def test_the_page_renders_in_headless_chromium(tmp_path):
    """The screenshot script draws a page with one image to a PNG as wide as the window."""
    from PIL import Image

    Image.new("RGB", (300, 200), (200, 30, 30)).save(tmp_path / "plot.png")
    (tmp_path / "report.html").write_text(
        '<!doctype html><html><body style="margin:0"><h1>Summary</h1>'
        '<img src="plot.png"></body></html>')
    png = tmp_path / "shot.png"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "screenshot_report.py"),
                          str(tmp_path / "report.html"), str(png), "--width", "800",
                          "--height", "2000"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    with Image.open(png) as image:
        assert image.width == 800 and 200 < image.height < 2000  # blank rows below cut off
        assert image.getpixel((100, image.height - 40))[:3] != (255, 255, 255)  # the plot
