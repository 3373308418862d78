"""`genodiff evaluate`: every metric for the synthetic cohort and for each reference generator.

Generators compared, each on the same footing:
- `model`: the synthetic cohort (its VCF calls and its features);
- the references of `references.py`: `real_test` (the ideal), `independent_sites` (the floor for LD),
  `train_copies` (the privacy failure). Reference features are the codec's encoding of their calls.

Sections: classifier transfer (recovery rates), augmentation, nearest-neighbour adversarial accuracy
(features and genotypes), population-genetics fidelity against the real training split, privacy.
Writes `report.json` (every number), PNG plots and `report.html` into one folder, atomically.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import time
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_dir
from genodiff_jax.data import io
from genodiff_jax.data.loader import PreparedDataset, load_prepared
from genodiff_jax.errors import InputError

REAL_IDEAL = "real_test"


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What to run and how hard: CI uses tiny values, real runs the defaults."""

    classifiers: tuple[str, ...] = ("mlp", "cnn", "transformer")
    seeds: tuple[int, ...] = (0, 1, 2)
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)
    augmentation_classifier: str = "mlp"
    references: tuple[str, ...] = ("real_test", "independent_sites", "train_copies")
    classifier_epochs: int = 30
    max_nnaa: int = 2000
    ld_window: int = 100
    seed: int = 0


@dataclasses.dataclass
class Generator:
    """A cohort to score: genotype calls int8 [n, S], features [n, G, K], labels [n]."""

    calls: np.ndarray
    features: np.ndarray
    labels: np.ndarray


def _variant_keys(chrom, pos, ref, alt) -> np.ndarray:
    return np.array([f"{c}:{p}:{r}:{a}" for c, p, r, a in zip(chrom, pos, ref, alt)])


def _aligned_calls(genotypes: io.Genotypes, variants: io.Variants, path) -> np.ndarray:
    """Columns of `genotypes` in the order of the dataset's variant table."""
    have = {k: j for j, k in enumerate(_variant_keys(genotypes.variants.chrom, genotypes.variants.pos,
                                                     genotypes.variants.ref, genotypes.variants.alt))}
    want = _variant_keys(variants.chrom, variants.pos, variants.ref, variants.alt)
    missing = [k for k in want if k not in have]
    if missing:
        raise InputError(path, f"{len(missing)} of the dataset's {len(want)} variants are absent, "
                               f"e.g. {missing[0]}")
    return genotypes.dosages[:, [have[k] for k in want]]


def real_calls(data: PreparedDataset) -> np.ndarray:
    """The real genotypes the dataset was prepared from, rows in genotype-file order [N, S]."""
    source = data.summary["sources"]["genotypes"]
    if not Path(source).is_file():
        raise InputError(source, "the real genotypes this dataset was prepared from are needed for "
                                 "evaluation and are no longer there")
    genotypes = io.read_genotypes(source, progress=False)
    return _aligned_calls(genotypes, data.variants, source)


def load_synthetic(folder: str | os.PathLike, data: PreparedDataset) -> Generator:
    """A `genodiff sample` folder: calls from synthetic.vcf.gz, features and labels from features.npz."""
    folder = Path(folder)
    for name in ("synthetic.vcf.gz", "features.npz"):
        if not (folder / name).is_file():
            raise InputError(folder, f"not a synthetic cohort (no {name}); run `genodiff sample`")
    genotypes = io.read_vcf(folder / "synthetic.vcf.gz", progress=False, drop_monomorphic=False)
    calls = _aligned_calls(genotypes, data.variants, folder / "synthetic.vcf.gz")
    with np.load(folder / "features.npz") as z:
        features, labels = z["features"].astype(np.float32), z["labels"].astype(np.int32)
    if features.shape[1:] != data.mask.shape:
        raise InputError(folder / "features.npz", f"features {features.shape[1:]} do not match the "
                                                  f"dataset's {data.mask.shape}")
    return Generator(calls, features, labels)


def build_generators(data: PreparedDataset, synthetic: Generator, calls: np.ndarray,
                     settings: EvalSettings) -> dict[str, Generator]:
    """The model's cohort and every reference, with features from the codec."""
    from genodiff_jax.eval.references import get_reference

    train_calls, test_calls = calls[data.train.index], calls[data.test.index]
    generators = {"model": synthetic}
    rng = np.random.default_rng(settings.seed)
    for name in settings.references:
        ref_calls, ref_labels = get_reference(name)(
            train_calls, data.train.labels, synthetic.labels, rng, test_calls=test_calls,
            test_labels=data.test.labels)
        ref_calls = np.asarray(ref_calls, np.int8)
        generators[name] = Generator(ref_calls, data.codec.encode(ref_calls),
                                     np.asarray(ref_labels, np.int32))
    return generators


# -- sections --------------------------------------------------------------------------------------

def transfer_section(data: PreparedDataset, generators: dict[str, Generator],
                     settings: EvalSettings) -> dict:
    from genodiff_jax.eval.transfer import augmentation, recovery_rates

    train = (data.train.features, data.train.labels)
    test = (data.test.features, data.test.labels)
    fit = {"epochs": settings.classifier_epochs}
    recovery = {}
    for name, gen in generators.items():
        if name == REAL_IDEAL:  # trained on the test split itself: not a transfer experiment
            continue
        recovery[name] = recovery_rates(train, test, (gen.features, gen.labels),
                                        classifiers=settings.classifiers, seeds=settings.seeds,
                                        num_classes=data.num_classes, mask=data.mask,
                                        fit_kwargs=fit)
    augment = augmentation(train, test, (generators["model"].features, generators["model"].labels),
                           fractions=settings.fractions, classifier=settings.augmentation_classifier,
                           seeds=settings.seeds, num_classes=data.num_classes, mask=data.mask,
                           fit_kwargs=fit)
    return {"recovery": recovery, "augmentation": augment}


def nnaa_section(data: PreparedDataset, calls: np.ndarray, generators: dict[str, Generator],
                 settings: EvalSettings) -> dict:
    from genodiff_jax.eval.nnaa import adversarial_accuracy, nnaa

    spaces = {
        "features": ("euclidean", data.train.features[:, data.mask], data.test.features[:, data.mask],
                     lambda g: g.features[:, data.mask]),
        "genotypes": ("hamming", calls[data.train.index], calls[data.test.index], lambda g: g.calls),
    }
    out: dict = {}
    for space, (metric, train, test, view) in spaces.items():
        # Integer Hamming distances tie often; splitting ties keeps an ideal generator at 0.5.
        ties = "half" if metric == "hamming" else "strict"
        out[space] = {}
        for name, gen in generators.items():
            if name == REAL_IDEAL:  # the test split against the training split: the ideal's AA
                out[space][name] = {"train": adversarial_accuracy(train, test, metric=metric,
                                                                  ties=ties)}
                continue
            out[space][name] = nnaa(train, test, view(gen), metric=metric, ties=ties,
                                    max_n=settings.max_nnaa, seed=settings.seed)
    return out


def fidelity_section(data: PreparedDataset, calls: np.ndarray, generators: dict[str, Generator],
                     settings: EvalSettings) -> dict:
    from genodiff_jax.eval.popgen import fidelity

    real = calls[data.train.index]
    variants = data.variants
    return {name: fidelity(real, gen.calls, variants.pos, real_labels=data.train.labels,
                           synthetic_labels=gen.labels, chroms=variants.chrom,
                           window=settings.ld_window, seed=settings.seed)
            for name, gen in generators.items()}


def privacy_section(data: PreparedDataset, calls: np.ndarray,
                    generators: dict[str, Generator]) -> dict:
    from genodiff_jax.eval.privacy import distance_to_closest_record, identical_matches, privacy

    train, test = calls[data.train.index], calls[data.test.index]
    out = {}
    for name, gen in generators.items():
        if name == REAL_IDEAL:
            # The attack scores the test split by its distance to the cohort; when the cohort *is*
            # the test split every non-member sits at distance 0, so the AUC says nothing.
            out[name] = {"identical": identical_matches(train, gen.calls),
                         "dcr": distance_to_closest_record(train, test, gen.calls),
                         "membership": {"auc": None,
                                        "note": "not applicable: the cohort is the test split"}}
        else:
            out[name] = privacy(train, test, gen.calls)
    return out


# -- the report ------------------------------------------------------------------------------------

def evaluate(data_dir: str | os.PathLike, synthetic_dir: str | os.PathLike,
             out: str | os.PathLike, settings: EvalSettings = EvalSettings()) -> dict:
    """Compute every section, write report.json, the plots and report.html into `out`."""
    data = load_prepared(data_dir)
    synthetic = load_synthetic(synthetic_dir, data)
    calls = real_calls(data)
    generators = build_generators(data, synthetic, calls, settings)
    timings = {}
    sections = {}
    for name, fn in (("transfer", lambda: transfer_section(data, generators, settings)),
                     ("nnaa", lambda: nnaa_section(data, calls, generators, settings)),
                     ("fidelity", lambda: fidelity_section(data, calls, generators, settings)),
                     ("privacy", lambda: privacy_section(data, calls, generators))):
        t0 = time.perf_counter()
        sections[name] = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
    report = {
        "data": str(Path(data_dir)), "synthetic": str(Path(synthetic_dir)),
        "n_train": len(data.train), "n_test": len(data.test),
        "n_synthetic": int(len(synthetic.labels)), "n_variants": int(calls.shape[1]),
        "class_names": data.class_names, "generators": list(generators),
        "settings": dataclasses.asdict(settings), "seconds": timings, **sections,
    }
    with atomic_dir(out) as tmp:
        plots = write_plots(tmp, report, data, calls, generators)
        (tmp / "report.json").write_text(json.dumps(to_json(report), indent=2) + "\n")
        (tmp / "report.html").write_text(render_html(report, plots))
    return to_json(report)


def to_json(obj):
    """Plain JSON: numpy scalars to numbers; arrays of more than 64 values dropped (plots use them)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(v, np.ndarray) and v.size > 64:
                continue
            if isinstance(v, list) and v and isinstance(v[0], np.ndarray) and v[0].size > 64:
                continue
            out[str(k)] = to_json(v)
        return out
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


# -- plots -----------------------------------------------------------------------------------------

def write_plots(folder: Path, report: dict, data: PreparedDataset, calls: np.ndarray,
                generators: dict[str, Generator]) -> dict[str, str]:
    """The pictures a person would rather look at than read; returns {title: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genodiff_jax.eval.popgen import allele_frequencies, r2_matrix

    plots: dict[str, str] = {}
    real = calls[data.train.index]
    names = list(generators)

    def save(fig, file: str, title: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / file, dpi=110)
        plt.close(fig)
        plots[title] = file

    # Allele frequencies: real training split vs each generator.
    af_real = allele_frequencies(real)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.scatter(af_real, allele_frequencies(generators[name].calls), s=2, alpha=0.4)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        r = report["fidelity"][name]["af"].get("overall", {}).get("r")
        ax.set_title(f"{name}\nr = {r:.3f}" if isinstance(r, float) else name, fontsize=9)
        ax.set_xlabel("real AF")
    axes[0][0].set_ylabel("generated AF")
    save(fig, "af_scatter.png", "Allele frequencies")

    # LD heatmaps of the first window, side by side.
    window = slice(0, min(report["settings"]["ld_window"], real.shape[1]))
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(3.0 * (1 + len(names)), 3.0), squeeze=False)
    for ax, (title, x) in zip(axes[0], [("real (train)", real)]
                              + [(n, generators[n].calls) for n in names]):
        ax.imshow(r2_matrix(x[:, window]), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    save(fig, "ld_heatmaps.png", "LD (r^2), first window")

    # PCA: fitted on the real training split, the model's cohort projected.
    pca = report["fidelity"]["model"]["pca"]
    if "real_coords" in pca and "synthetic_coords" in pca:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        rc, sc = np.asarray(pca["real_coords"]), np.asarray(pca["synthetic_coords"])
        ax.scatter(rc[:, 0], rc[:, 1], s=4, alpha=0.5, label="real (train)")
        ax.scatter(sc[:, 0], sc[:, 1], s=4, alpha=0.5, label="synthetic")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        ax.legend(fontsize=8)
        save(fig, "pca_overlay.png", "PCA: real vs synthetic")

    # Augmentation bars.
    aug = report["transfer"]["augmentation"]
    x = np.arange(len(aug["fractions"]))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, aug["real_only"]["mean"], 0.4, yerr=aug["real_only"]["std"], label="real only")
    ax.bar(x + 0.2, aug["real_plus_synthetic"]["mean"], 0.4, yerr=aug["real_plus_synthetic"]["std"],
           label="real + synthetic")
    ax.set_xticks(x, [f"{int(round(f * 100))} %" for f in aug["fractions"]])
    ax.set_xlabel("share of the real training split")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    save(fig, "augmentation.png", "Augmentation")

    # NNAA bars: AA against test and train, per generator, on genotypes.
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    nn = report["nnaa"]["genotypes"]
    x = np.arange(len(names))
    test_aa = [nn[n].get("test", {}).get("aa", np.nan) for n in names]
    train_aa = [nn[n]["train"]["aa"] for n in names]
    ax.bar(x - 0.2, test_aa, 0.4, label="vs real test")
    ax.bar(x + 0.2, train_aa, 0.4, label="vs real train")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("adversarial accuracy (0.5 ideal)")
    ax.legend(fontsize=8)
    save(fig, "nnaa.png", "Nearest-neighbour adversarial accuracy (genotypes)")
    return plots


# -- html ------------------------------------------------------------------------------------------

def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def summary_rows(report: dict) -> list[list]:
    """One row per generator with the headline number of every section."""
    rows = []
    for name in report["generators"]:
        fid, priv = report["fidelity"][name], report["privacy"][name]
        rec = report["transfer"]["recovery"].get(name, {})
        nn = report["nnaa"]["genotypes"][name]
        rows.append([
            name,
            rec.get("mlp", {}).get("recovery_mean", "-") if rec else "(ideal) 1",
            nn.get("test", {}).get("aa", "-"), nn["train"]["aa"], nn.get("privacy_loss", "-"),
            fid["af"]["overall"]["r"], fid["ld"]["r"], fid["fst"]["overall"],
            priv["identical"]["n_identical"],
            "-" if priv["membership"]["auc"] is None else priv["membership"]["auc"],
        ])
    return rows


SUMMARY_HEADER = ["generator", "recovery (MLP)", "AA vs test", "AA vs train", "privacy loss",
                  "AF r", "LD r", "Fst", "identical to train", "membership AUC"]


def render_html(report: dict, plots: dict[str, str]) -> str:
    rec_rows = [[gen, clf, v["a_real_mean"], v["a_syn_mean"], v["recovery_mean"], v["recovery_std"]]
                for gen, per in report["transfer"]["recovery"].items() for clf, v in per.items()]
    aug = report["transfer"]["augmentation"]
    aug_rows = [[f"{f:.0%}", a, b] for f, a, b in zip(aug["fractions"], aug["real_only"]["mean"],
                                                      aug["real_plus_synthetic"]["mean"])]
    figures = "".join(f'<figure><img src="{html.escape(f)}"><figcaption>{html.escape(t)}'
                      "</figcaption></figure>" for t, f in plots.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>genodiff-jax evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}
figure{{display:inline-block;margin:1em}}img{{max-width:100%}}</style></head><body>
<h1>Synthetic cohort evaluation</h1>
<p>{report['n_synthetic']} synthetic people, {report['n_train']} real training and
{report['n_test']} real test people, {report['n_variants']} variants. References: <b>real_test</b>
(the ideal), <b>independent_sites</b> (per-population allele frequencies under Hardy-Weinberg: keeps
AF, destroys LD), <b>train_copies</b> (copies of training genomes: the privacy failure). Every number
is in report.json.</p>
<h2>Summary</h2>{_table(SUMMARY_HEADER, summary_rows(report))}
<h2>Classifier transfer</h2>{_table(["generator", "classifier", "a_real", "a_syn", "recovery",
                                       "spread"], rec_rows)}
<h2>Augmentation ({html.escape(aug['classifier'])})</h2>{_table(["real share", "real only",
                                                                  "real + synthetic"], aug_rows)}
<h2>Plots</h2>{figures}
</body></html>
"""
