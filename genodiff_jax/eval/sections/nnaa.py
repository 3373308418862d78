"""Section `nnaa`: nearest-neighbour adversarial accuracy (Yale et al. 2019, DESIGN 1.4) of every
generator against the real test and training splits, in feature space (euclidean) and on genotype
calls (Hamming). report["nnaa"] = {"features" | "genotypes": {generator: {"test", "train",
"privacy_loss"}}}; the ideal `real_test` has only "train" (the test split against the training
split).
"""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.sections.base import REAL_IDEAL, SECTIONS, EvalContext, SaveFigure, Section


def compute(ctx: EvalContext) -> dict:
    """AA_truth, AA_syn and privacy loss per space and generator."""
    from genodiff_jax.eval.nnaa import adversarial_accuracy, nnaa

    data, settings = ctx.data, ctx.settings
    spaces = {
        "features": ("euclidean", data.train.features[:, data.mask],
                     data.test.features[:, data.mask], lambda g: g.features[:, data.mask]),
        "genotypes": ("hamming", ctx.train_calls, ctx.test_calls, lambda g: g.calls),
    }
    out: dict = {}
    for space, (metric, train, test, view) in spaces.items():
        # Integer Hamming distances tie often; splitting ties keeps an ideal generator at 0.5.
        ties = "half" if metric == "hamming" else "strict"
        out[space] = {}
        for name, gen in ctx.generators.items():
            if name == REAL_IDEAL:  # the test split against the training split: the ideal's AA
                out[space][name] = {"train": adversarial_accuracy(train, test, metric=metric,
                                                                  ties=ties)}
                continue
            out[space][name] = nnaa(train, test, view(gen), metric=metric, ties=ties,
                                    max_n=settings.max_nnaa, seed=settings.seed)
    return out


COLUMNS = [
    ("AA vs test", lambda result, gen: result["genotypes"][gen].get("test", {}).get("aa", "-")),
    ("AA vs train", lambda result, gen: result["genotypes"][gen]["train"]["aa"]),
    ("privacy loss", lambda result, gen: result["genotypes"][gen].get("privacy_loss", "-")),
]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """AA against test and train, per generator, on genotypes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    nn = result["genotypes"]
    names = list(ctx.generators)
    x = np.arange(len(names))
    test_aa = [nn[n].get("test", {}).get("aa", np.nan) for n in names]
    train_aa = [nn[n]["train"]["aa"] for n in names]
    ax.bar(x - 0.2, test_aa, 0.4, label="vs real test")
    ax.bar(x + 0.2, train_aa, 0.4, label="vs real train")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("adversarial accuracy (0.5 ideal)")
    ax.legend(fontsize=8)
    return {"Nearest-neighbour adversarial accuracy (genotypes)": save(fig, "nnaa.png")}


SECTIONS.register("nnaa", Section(compute, COLUMNS, plots=plots))
