"""Section `two_sample`: a classifier two-sample test on SNP calls (see `eval/twosample.py`): the
cross-validated AUC of a logistic regression telling real held-out people from each generator's,
0.5 = indistinguishable. For the ideal `real_test` the two sides are the real test split and an
equal-size draw of real training people. report["two_sample"] = {generator: {"auc", "auc_std",
"auc_folds", "n_per_side", "folds", "c", "against"}}."""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.sections.base import REAL_IDEAL, SECTIONS, EvalContext, SaveFigure, Section


def compute(ctx: EvalContext) -> dict:
    """The two-sample AUC of every generator against the real test split."""
    from genodiff_jax.eval.twosample import two_sample_auc

    settings = ctx.settings
    test = ctx.test_calls
    out = {}
    for name, gen in ctx.generators.items():
        ideal = name == REAL_IDEAL  # the test split against itself would say nothing
        other = ctx.train_calls if ideal else gen.calls
        out[name] = {**two_sample_auc(test, other, folds=settings.two_sample_folds,
                                      seed=settings.seed, max_n=settings.max_two_sample),
                     "against": "real train" if ideal else name}
    return out


def auc_cell(result: dict, generator: str):
    auc = result[generator]["auc"]
    return "-" if auc is None else auc


COLUMNS = [("two-sample AUC", auc_cell)]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """AUC bars per generator, fold spread as error bars, the ideal 0.5 as a line."""
    import matplotlib.pyplot as plt

    names = list(result)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(names)), 3.2))
    x = np.arange(len(names))
    ax.bar(x, [np.nan if result[n]["auc"] is None else result[n]["auc"] for n in names], 0.6,
           yerr=[result[n]["auc_std"] or 0.0 for n in names])
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0.0, 1.05)
    ax.set_xticks(x, names, fontsize=8, rotation=30, ha="right")
    ax.set_ylabel("AUC vs real test (0.5 ideal)")
    return {"Classifier two-sample test (SNP logistic regression)": save(fig, "two_sample.png")}


LEGEND = {
    "two-sample AUC": "cross-validated AUC of a SNP logistic regression telling real held-out "
                      "people from the generator's; 0.5 is ideal, higher is told apart",
}

SECTIONS.register("two_sample", Section(compute, COLUMNS, plots=plots, legend=LEGEND))
