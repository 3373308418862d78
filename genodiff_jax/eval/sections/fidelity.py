"""Section `fidelity`: population-genetics fidelity of every generator's calls against the real
training split (allele frequencies overall and per class, the summary's "AF r per class" the mean
over classes of each class's r against its own real class, LD, PCA overlap, Fst, ...; see
`eval/popgen.py`). report["fidelity"] = {generator: popgen.fidelity(...)}."""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.sections.base import SECTIONS, EvalContext, SaveFigure, Section


def compute(ctx: EvalContext) -> dict:
    """`popgen.fidelity` of each generator's calls against the real training split."""
    from genodiff_jax.eval.popgen import fidelity

    real, variants = ctx.train_calls, ctx.data.variants
    return {name: fidelity(real, gen.calls, variants.pos, real_labels=ctx.data.train.labels,
                           synthetic_labels=gen.labels, chroms=variants.chrom,
                           window=ctx.settings.ld_window, seed=ctx.settings.seed)
            for name, gen in ctx.generators.items()}


COLUMNS = [
    ("AF r", lambda result, gen: result[gen]["af"]["overall"]["r"]),
    ("AF r per class", lambda result, gen: result[gen]["af"]["per_population_mean_r"]),
    ("LD r", lambda result, gen: result[gen]["ld"]["r"]),
    ("Fst", lambda result, gen: result[gen]["fst"]["overall"]),
]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """Allele-frequency scatters, LD heatmaps of the first window, the PCA overlay."""
    import matplotlib.pyplot as plt

    from genodiff_jax.eval.popgen import allele_frequencies, r2_matrix

    real = ctx.train_calls
    names = list(ctx.generators)
    out = {}

    # Allele frequencies: real training split vs each generator.
    af_real = allele_frequencies(real)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.scatter(af_real, allele_frequencies(ctx.generators[name].calls), s=2, alpha=0.4)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        r = result[name]["af"].get("overall", {}).get("r")
        ax.set_title(f"{name}\nr = {r:.3f}" if isinstance(r, float) else name, fontsize=9)
        ax.set_xlabel("real AF")
    axes[0][0].set_ylabel("generated AF")
    out["Allele frequencies"] = save(fig, "af_scatter.png")

    # LD heatmaps of the first window, side by side.
    window = slice(0, min(ctx.settings.ld_window, real.shape[1]))
    panels = 1 + len(names)
    fig, axes = plt.subplots(1, panels, figsize=(3.0 * panels, 3.0), squeeze=False)
    for ax, (title, x) in zip(axes[0], [("real (train)", real)]
                              + [(n, ctx.generators[n].calls) for n in names]):
        ax.imshow(r2_matrix(x[:, window]), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    out["LD (r^2), first window"] = save(fig, "ld_heatmaps.png")

    # PCA: fitted on the real training split, the model's cohort projected.
    pca = result.get(ctx.synthetic[0], {}).get("pca", {})
    if "real_coords" in pca and "synthetic_coords" in pca:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        rc, sc = np.asarray(pca["real_coords"]), np.asarray(pca["synthetic_coords"])
        ax.scatter(rc[:, 0], rc[:, 1], s=4, alpha=0.5, label="real (train)")
        ax.scatter(sc[:, 0], sc[:, 1], s=4, alpha=0.5, label="synthetic")
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
        ax.legend(fontsize=8)
        out["PCA: real vs synthetic"] = save(fig, "pca_overlay.png")
    return out


SECTIONS.register("fidelity", Section(compute, COLUMNS, plots=plots))
