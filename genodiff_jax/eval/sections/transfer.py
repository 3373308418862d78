"""Section `transfer`: classifiers trained on each generator's cohort and tested on real held-out
people (recovery rates, DESIGN 1.4), and augmentation of a share of the real training split with the
model's cohort. report["transfer"] = {"recovery": {generator: {classifier: ...}},
"augmentation": {...}}; see `eval/transfer.py` for the numbers. The Flax classifiers
(`EvalSettings.classifiers`) read gene-PCA features; `snp_logreg` (`EvalSettings.snp_logreg`, see
`eval/logreg.py`) reads the SNP calls, so it also sees what the codec drops."""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.logreg import SNP_LOGREG
from genodiff_jax.eval.sections.base import (
    REAL_IDEAL,
    SECTIONS,
    EvalContext,
    SaveFigure,
    Section,
    Table,
)


def compute(ctx: EvalContext) -> dict:
    """Recovery rates of every generator but the ideal; augmentation with the model's cohort."""
    from genodiff_jax.eval.logreg import snp_accuracy, snp_recovery
    from genodiff_jax.eval.transfer import augmentation, recovery_rates

    data, settings = ctx.data, ctx.settings
    train = (data.train.features, data.train.labels)
    test = (data.test.features, data.test.labels)
    fit = {"epochs": settings.classifier_epochs}
    recovery = {}
    if settings.snp_logreg:  # one fit on the real training split serves every generator
        test_calls = ctx.test_calls
        a_real = snp_accuracy(ctx.train_calls, data.train.labels, test_calls, data.test.labels)
    for name, gen in ctx.generators.items():
        if name == REAL_IDEAL:  # trained on the test split itself: not a transfer experiment
            continue
        recovery[name] = recovery_rates(train, test, (gen.features, gen.labels),
                                        classifiers=settings.classifiers, seeds=settings.seeds,
                                        num_classes=data.num_classes, mask=data.mask,
                                        fit_kwargs=fit)
        if settings.snp_logreg:
            recovery[name][SNP_LOGREG] = snp_recovery(a_real, gen.calls, gen.labels, test_calls,
                                                      data.test.labels, seed=settings.seed)
    model = ctx.generators[ctx.synthetic[0]]
    augment = augmentation(train, test, (model.features, model.labels),
                           fractions=settings.fractions,
                           classifier=settings.augmentation_classifier, seeds=settings.seeds,
                           num_classes=data.num_classes, mask=data.mask, fit_kwargs=fit)
    return {"recovery": recovery, "augmentation": augment}


def recovery_of(classifier: str):
    """A summary cell: `classifier`'s mean recovery rate; the ideal has none (it *is* the test
    split)."""
    def cell(result: dict, generator: str):
        rec = result["recovery"].get(generator, {})
        return rec.get(classifier, {}).get("recovery_mean", "-") if rec else "(ideal) 1"
    return cell


COLUMNS = [("recovery (MLP)", recovery_of("mlp")), ("recovery (SNP LR)", recovery_of(SNP_LOGREG))]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """Augmentation bars: real only vs real + synthetic, per share of the real training split."""
    import matplotlib.pyplot as plt

    aug = result["augmentation"]
    x = np.arange(len(aug["fractions"]))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, aug["real_only"]["mean"], 0.4, yerr=aug["real_only"]["std"], label="real only")
    ax.bar(x + 0.2, aug["real_plus_synthetic"]["mean"], 0.4, yerr=aug["real_plus_synthetic"]["std"],
           label="real + synthetic")
    ax.set_xticks(x, [f"{int(round(f * 100))} %" for f in aug["fractions"]])
    ax.set_xlabel("share of the real training split")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    return {"Augmentation": save(fig, "augmentation.png")}


def tables(result: dict) -> list[Table]:
    """Recovery per generator and classifier; augmentation per real share."""
    recovery = [[gen, clf, v["a_real_mean"], v["a_syn_mean"], v["recovery_mean"], v["recovery_std"]]
                for gen, per in result["recovery"].items() for clf, v in per.items()]
    aug = result["augmentation"]
    augmentation = [[f"{f:.0%}", a, b]
                    for f, a, b in zip(aug["fractions"], aug["real_only"]["mean"],
                                       aug["real_plus_synthetic"]["mean"])]
    return [("Classifier transfer",
             ["generator", "classifier", "a_real", "a_syn", "recovery", "spread"], recovery),
            (f"Augmentation ({aug['classifier']})", ["real share", "real only", "real + synthetic"],
             augmentation)]


LEGEND = {
    "recovery (MLP)": "accuracy on real held-out people of an MLP trained on the generator / of "
                      "one trained on real training people; higher is better, ideal 1",
    "recovery (SNP LR)": "the same for a logistic regression on SNP calls; higher is better, "
                         "ideal 1",
}

SECTIONS.register("transfer", Section(compute, COLUMNS, plots=plots, tables=tables,
                                      legend=LEGEND))
