"""Section `per_class`: does each generated class look like its own real population?

A cohort can match the real allele frequencies overall while its classes drift towards a
neighbouring population; neither the overall AF r nor the recovery rate shows it. Per generator:

- `af`: the matrix r[i, j] = Pearson r between synthetic class i's allele frequencies and real
  class j's, the real side the *training* split (its classes are 9 times larger than the
  held-out split's, so their frequencies are the least noisy, and `real_test`'s row is then the
  held-out people's: the ideal); the diagonal is "carries its label". `own_class`: how many
  classes match their own real class best (of `n_classes`); `diagonal_mean` equals the fidelity
  section's "AF r per class" (see `popgen.af_class_matrix`). Read the count against
  `real_test`'s *and the class sizes* (`class_sizes`): a class of few people has noisy
  frequencies, and neighbouring populations differ by little. Measured on the real LCT region
  (2026-12-06): held-out people (6-11 a population) match their own population for 12 of 26
  (raw r; 10 on frequencies centred on the pooled ones, 11 by the smallest Hudson Fst) and 4 of 5
  super-populations (AMR closest to EUR), where references drawn at the training split's size
  (55-102 a population) match all.
- `confusion`: the SNP-level logistic regression (`eval/logreg.py`) trained on the generator's
  calls and labels, tested on the real *held-out* people; rows the true class, columns the
  predicted one. For `real_test` (the held-out people themselves) the regression is trained on
  the real training split instead: the ideal matrix.

report["per_class"] = {"af_against": "real train", "confusion_tested_on": "real test",
"class_names": [...], "generators": {generator: {"af": {...}, "confusion": {...},
"confusion_trained_on", "class_sizes"}}}. Cost: one SNP regression fit per generator (the demo:
7 s for its 11 generators; LCT: about 9 s a generator of the training split's size, 2 cores).
"""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval import figures
from genodiff_jax.eval.sections.base import (
    REAL_IDEAL,
    SECTIONS,
    EvalContext,
    SaveFigure,
    Section,
    Table,
)

_ANNOTATE_UP_TO = 8  # classes: print the numbers in the cells of smaller matrices


def compute(ctx: EvalContext) -> dict:
    """The class-by-class AF correlations and the SNP regression's confusion, per generator."""
    from genodiff_jax.eval.logreg import snp_confusion
    from genodiff_jax.eval.popgen import af_class_matrix

    data = ctx.data
    k = data.num_classes
    train, train_labels = ctx.train_calls, data.train.labels
    test, test_labels = ctx.test_calls, data.test.labels
    out = {}
    for name, gen in ctx.generators.items():
        af = af_class_matrix(train, gen.calls, train_labels, gen.labels, k)
        ideal = name == REAL_IDEAL  # trained on the test split itself it would say nothing
        confusion = snp_confusion(train if ideal else gen.calls,
                                  train_labels if ideal else gen.labels, test, test_labels, k)
        out[name] = {"af": _lists(af), "confusion": _lists(confusion),
                     "confusion_trained_on": "real train" if ideal else name,
                     "class_sizes": np.bincount(gen.labels, minlength=k).tolist()}
    return {"af_against": "real train", "confusion_tested_on": "real test",
            "class_names": list(data.class_names), "generators": out}


def _lists(d: dict) -> dict:
    # Arrays as lists: report.json keeps lists of any size (it drops large arrays).
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in d.items()}


def own_class_cell(result: dict, generator: str) -> str:
    af = result["generators"][generator]["af"]
    return f"{af['own_class']}/{af['n_classes']}"


COLUMNS = [
    ("own-class AF match", own_class_cell),
    ("SNP LR balanced acc",
     lambda result, gen: result["generators"][gen]["confusion"]["balanced_accuracy"]),
]

LEGEND = {
    "own-class AF match": "generated classes whose allele frequencies correlate best with their "
                          "own real class (of those generated); higher is better, ideal all",
    "SNP LR balanced acc": "SNP logistic regression trained on the generator, mean per-class "
                           "recall on real held-out people; higher is better, ideal about "
                           "real_test's (trained on real people)",
}


def tables(result: dict) -> list[Table]:
    """Per generator: own-class matches, the diagonal's mean r and the best off-diagonal's, the
    classes that match another population best, the regression's accuracies."""
    names = result["class_names"]
    rows = []
    for gen, v in result["generators"].items():
        af, conf = v["af"], v["confusion"]
        drift = [f"{names[i]} -> {names[j]}" for i, j in enumerate(af["best_match"])
                 if j >= 0 and j != i]
        sizes = [n for n in v.get("class_sizes", []) if n > 0]
        rows.append([gen, "-" if not sizes else str(sizes[0]) if min(sizes) == max(sizes)
                     else f"{min(sizes)}-{max(sizes)}",
                     own_class_cell(result, gen), af["diagonal_mean"],
                     af["off_diagonal_best_mean"], ", ".join(drift) or "none",
                     conf["accuracy"], conf["balanced_accuracy"], v["confusion_trained_on"]])
    return [(f"Per class: AF against {result['af_against']}, SNP regression tested on "
             f"{result['confusion_tested_on']}",
             ["generator", "people per class", "own-class AF match", "mean diagonal r",
              "mean best other r", "classes closest to another", "SNP LR acc",
              "SNP LR balanced acc", "SNP LR trained on"], rows)]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """Two grids, one panel per generator: the class-by-class AF correlations (each row's best
    match boxed) and the SNP regression's row-normalised confusion on real held-out people."""
    names = figures.panel_order(list(result["generators"]), ctx.synthetic)
    classes = result["class_names"]
    gens = result["generators"]
    af = {n: np.asarray(gens[n]["af"]["r"], np.float64) for n in names}
    finite = np.concatenate([m[np.isfinite(m)] for m in af.values()] + [np.ones(1)])
    low = float(np.floor(finite.min() * 100) / 100)
    extra = 0.5 if len(classes) <= 10 else 0.8  # rows for the titles and the class names
    out = {}

    fig, axes = figures.panel_grid(len(names), colorbar=True, extra_height=extra)
    for ax, name in zip(axes, names):
        m = af[name]
        im = ax.imshow(m, vmin=low, vmax=1.0, cmap="magma")
        for i, j in enumerate(gens[name]["af"]["best_match"]):
            if j >= 0:
                ax.add_patch(_box(i, j, "cyan" if i == j else "red"))
        _annotate(ax, im, m, "{:.3f}")
        v = gens[name]["af"]
        figures.title(ax, name, f"own class {v['own_class']}/{v['n_classes']}, diagonal "
                                f"{figures.fmt(v['diagonal_mean'])}",
                      role=figures.role_of(name, ctx.synthetic))
        _class_ticks(ax, classes)
    figures.label_axes(axes, "real class (train)", "generated class", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="AF r")
    out["Per class: AF r of each generated class (rows) against each real training class "
        "(columns); boxed: each row's best match, cyan its own class, red another"] = (
        save(fig, "per_class_af.png"))

    fig, axes = figures.panel_grid(len(names), colorbar=True, extra_height=extra)
    for ax, name in zip(axes, names):
        counts = np.asarray(gens[name]["confusion"]["counts"], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = counts / counts.sum(axis=1, keepdims=True)
        im = ax.imshow(share, vmin=0.0, vmax=1.0, cmap="Blues")
        _annotate(ax, im, share, "{:.2f}")
        c = gens[name]["confusion"]
        trained = gens[name]["confusion_trained_on"]
        figures.title(ax, name if trained == name else f"{name}: trained on {trained}",
                      f"balanced acc {figures.fmt(c['balanced_accuracy'])}",
                      role=figures.role_of(name, ctx.synthetic))
        _class_ticks(ax, classes)
    figures.label_axes(axes, "predicted class", "true class (real test)", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="share of the true class")
    out["Per class: SNP regression trained on each generator, confusion on real held-out "
        "people"] = save(fig, "per_class_confusion.png")
    return out


def _box(i: int, j: int, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color, lw=1.5)


def _annotate(ax, image, m: np.ndarray, form: str) -> None:
    """The values in the cells (small matrices only), white on dark colours, black on light."""
    if len(m) > _ANNOTATE_UP_TO:
        return
    for (i, j), v in np.ndenumerate(m):
        if np.isfinite(v):
            r, g, b, _ = image.cmap(image.norm(v))
            ax.text(j, i, form.format(v), ha="center", va="center", fontsize=6.5,
                    color="white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black")


def _class_ticks(ax, classes: list[str]) -> None:
    k = len(classes)
    size = 7 if k <= 10 else 5
    ax.set_xticks(range(k), classes, fontsize=size, rotation=90)
    ax.set_yticks(range(k), classes, fontsize=size)


SECTIONS.register("per_class", Section(compute, COLUMNS, plots=plots, tables=tables,
                                       legend=LEGEND))
