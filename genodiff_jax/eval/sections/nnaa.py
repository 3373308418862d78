"""Section `nnaa`: nearest-neighbour adversarial accuracy (Yale et al. 2019, DESIGN 1.4) of every
generator against the real test and training splits, in feature space (euclidean) and on genotype
calls (Hamming). report["nnaa"] = {"features" | "genotypes": {generator: {"test", "train",
"privacy_loss", "n", "n_test"}}} (see `eval.nnaa.nnaa`). The ideal `real_test` cannot be compared
with itself, so its test split is halved: one half plays the synthetic cohort, the other the real
test split (averaged over several halvings), and its privacy loss (about 0) is read like any
generator's.
"""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.sections.base import REAL_IDEAL, SECTIONS, EvalContext, SaveFigure, Section


def compute(ctx: EvalContext) -> dict:
    """AA_truth, AA_syn and privacy loss per space and generator."""
    from genodiff_jax.eval.nnaa import nnaa

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
            if name == REAL_IDEAL:
                out[space][name] = _halved_test_split(train, test, metric, ties, settings)
                continue
            out[space][name] = nnaa(train, test, view(gen), metric=metric, ties=ties,
                                    max_n=settings.max_nnaa, seed=settings.seed)
    return out


_HALVINGS = 8  # random halvings of the test split averaged for the ideal's row


def _halved_test_split(train: np.ndarray, test: np.ndarray, metric: str, ties: str,
                       settings) -> dict:
    """The ideal's NNAA: one half of the test split plays the synthetic cohort, the other the real
    test split; averaged over `_HALVINGS` random halvings (the halves are small)."""
    from genodiff_jax.eval.nnaa import mean_aa, nnaa

    rng = np.random.default_rng(settings.seed)
    runs = []
    for i in range(_HALVINGS):
        order = rng.permutation(len(test))
        cohort, real = test[order[:len(test) // 2]], test[order[len(test) // 2:]]
        runs.append(nnaa(train, real, cohort, metric=metric, ties=ties, max_n=settings.max_nnaa,
                         seed=settings.seed + i))
    test_aa, train_aa = mean_aa([r["test"] for r in runs]), mean_aa([r["train"] for r in runs])
    matched = mean_aa([r["train_at_test_size"] for r in runs])
    return {"test": test_aa, "train": train_aa, "privacy_loss": test_aa["aa"] - train_aa["aa"],
            "n": runs[0]["n"], "n_test": runs[0]["n_test"], "train_at_test_size": matched,
            "privacy_loss_at_test_size": test_aa["aa"] - matched["aa"],
            "halved_test_split": _HALVINGS}


COLUMNS = [
    # .get: reports written before the ideal's test split was halved have no "test" for it.
    ("AA vs test", lambda result, gen: result["genotypes"][gen].get("test", {}).get("aa", "-")),
    ("AA vs train", lambda result, gen: result["genotypes"][gen]["train"]["aa"]),
    ("privacy loss", lambda result, gen: result["genotypes"][gen].get("privacy_loss", "-")),
]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """AA against test and train, per generator, on genotypes."""
    import matplotlib.pyplot as plt

    nn = result["genotypes"]
    names = list(ctx.generators)
    fig, ax = plt.subplots(figsize=(max(5.5, 0.8 * len(names)), 3.4))
    x = np.arange(len(names))
    test_aa = [nn[n]["test"]["aa"] for n in names]
    train_aa = [nn[n]["train"]["aa"] for n in names]
    ax.bar(x - 0.2, test_aa, 0.4, label="vs real test")
    ax.bar(x + 0.2, train_aa, 0.4, label="vs real train")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(x, names, fontsize=8, rotation=30, ha="right")
    ax.set_ylabel("adversarial accuracy (0.5 ideal)")
    ax.legend(fontsize=8)
    return {"Nearest-neighbour adversarial accuracy (genotypes)": save(fig, "nnaa.png")}


LEGEND = {
    "AA vs test": "nearest-neighbour adversarial accuracy against real held-out people "
                  "(genotypes); 0.5 is ideal, higher means told apart",
    "AA vs train": "the same against real training people; 0.5 is ideal, lower means too close "
                   "to training people",
    "privacy loss": "AA vs test - AA vs train; about 0 is ideal, higher means memorised "
                    "(train_copies about 0.5)",
}

SECTIONS.register("nnaa", Section(compute, COLUMNS, plots=plots, legend=LEGEND))
