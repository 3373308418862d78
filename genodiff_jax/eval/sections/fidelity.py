"""Section `fidelity`: population-genetics fidelity of every generator's calls against the real
training split (allele frequencies overall and per class, the summary's "AF r per class" the mean
over classes of each class's r against its own real class, LD, PCA overlap, Fst, ...; see
`eval/popgen.py`). report["fidelity"] = {generator: popgen.fidelity(...)}."""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval import figures
from genodiff_jax.eval.sections.base import SECTIONS, EvalContext, SaveFigure, Section


def compute(ctx: EvalContext) -> dict:
    """`popgen.fidelity` of each generator's calls against the real training split, and its LD r
    at the held-out split's size ("ld_at_held_out_size", `popgen.ld_correlation_at_size`, one
    draw per `EvalSettings.seeds`)."""
    from genodiff_jax.eval.popgen import fidelity, ld_correlation_at_size

    real, variants, settings = ctx.train_calls, ctx.data.variants, ctx.settings
    held_out = len(ctx.data.test.index)
    return {name: {**fidelity(real, gen.calls, variants.pos, real_labels=ctx.data.train.labels,
                              synthetic_labels=gen.labels, chroms=variants.chrom,
                              window=settings.ld_window, seed=settings.seed),
                   "ld_at_held_out_size": ld_correlation_at_size(
                       real, gen.calls, held_out, seeds=settings.seeds,
                       window=settings.ld_window, chroms=variants.chrom)}
            for name, gen in ctx.generators.items()}


def _ld_at_held_out_size(result: dict):
    """The LD r at the held-out size, None in a report written before it was measured."""
    return result.get("ld_at_held_out_size", {}).get("r")


COLUMNS = [
    ("AF r", lambda result, gen: result[gen]["af"]["overall"]["r"]),
    ("AF r per class", lambda result, gen: result[gen]["af"]["per_population_mean_r"]),
    ("LD r", lambda result, gen: result[gen]["ld"]["r"]),
    ("LD r at n held-out", lambda result, gen: _ld_at_held_out_size(result[gen])),
    ("Fst", lambda result, gen: result[gen]["fst"]["overall"]),
]


LEGEND = {
    "AF r": "Pearson r of allele frequencies, generator vs real training people; higher is "
            "better, ideal about real_test's",
    "AF r per class": "mean over classes of that r, each generated class against its own real "
                      "class (labels carried); higher is better, ideal about real_test's",
    "LD r": "Pearson r of LD r^2 over SNP pairs in windows, vs real training people; higher is "
            "better, ideal about real_test's (independent_sites: the floor)",
    "LD r at n held-out": "the same r for as many of the generator's people as the real held-out "
                          "split has (mean over the report's seeds): generators compared at one "
                          "size, as r^2 from fewer people is noisier; ideal about real_test's",
    "Fst": "Hudson's Fst between the generator and real training people; lower is better, "
           "ideal about 0 (real_test's)",
}


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """Small multiples, one panel per generator (real held-out people first, then the models,
    then the other references), each titled with its headline figure: allele-frequency density
    against the real training split, LD heatmaps of the first window (the real training split
    first), PCA of the real training split with each generator's people projected over it."""
    names = figures.panel_order(list(ctx.generators), ctx.synthetic)
    return {"Allele frequencies: each generator against real training people":
            _af_grid(ctx, result, names, save),
            "LD (r^2), first window, shared colour scale": _ld_grid(ctx, result, names, save),
            **_pca_grid(ctx, result, names, save)}


def _af_grid(ctx: EvalContext, result: dict, names: list[str], save: SaveFigure) -> str:
    """2-D histograms of (real training AF, generated AF), one log colour scale for all."""
    from matplotlib.colors import LogNorm

    from genodiff_jax.eval.popgen import allele_frequencies

    af_real = allele_frequencies(ctx.train_calls)
    edges = np.linspace(0.0, 1.0, 51)
    counts = {n: np.histogram2d(af_real, allele_frequencies(ctx.generators[n].calls),
                                bins=(edges, edges))[0] for n in names}
    norm = LogNorm(vmin=1, vmax=max(2.0, max(c.max() for c in counts.values())))
    fig, axes = figures.panel_grid(len(names), colorbar=True)
    for ax, name in zip(axes, names):
        c = counts[name]
        mesh = ax.pcolormesh(edges, edges, np.ma.masked_equal(c.T, 0), norm=norm,
                             cmap="viridis")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6)
        af = result[name]["af"]
        figures.title(ax, name, f"AF r {figures.fmt(af['overall']['r'])}, per class "
                                f"{figures.fmt(af.get('per_population_mean_r'))}",
                      role=figures.role_of(name, ctx.synthetic))
        ax.set_aspect("equal")
    figures.label_axes(axes, "real training AF", "generated AF")
    fig.colorbar(mesh, ax=axes, shrink=0.6, label="SNPs per cell")
    return save(fig, "af_scatter.png")


def _ld_grid(ctx: EvalContext, result: dict, names: list[str], save: SaveFigure) -> str:
    """r^2 of the first LD window: the real training split, then each generator; colour 0-1."""
    from genodiff_jax.eval.popgen import r2_matrix

    real = ctx.train_calls
    window = slice(0, min(ctx.settings.ld_window, real.shape[1]))
    panels = [("real train", real, None, "the reference")]
    panels += [(n, ctx.generators[n].calls, figures.role_of(n, ctx.synthetic),
                f"LD r {figures.fmt(result[n]['ld']['r'])}") for n in names]
    fig, axes = figures.panel_grid(len(panels), colorbar=True)
    for ax, (name, calls, role, headline) in zip(axes, panels):
        im = ax.imshow(r2_matrix(calls[:, window]), vmin=0, vmax=1, cmap="viridis",
                       interpolation="nearest")
        figures.title(ax, name, headline, role=role)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.6, label="LD r^2")
    return save(fig, "ld_heatmaps.png")


def _pca_grid(ctx: EvalContext, result: dict, names: list[str],
              save: SaveFigure) -> dict[str, str]:
    """PC1/PC2 of the real training split (grey, beneath) with each generator's people projected
    and coloured by class; one panel per generator."""
    from matplotlib.lines import Line2D

    have = [n for n in names if "synthetic_coords" in result[n].get("pca", {})]
    if not have or "real_coords" not in result[have[0]]["pca"]:
        return {}
    real = np.asarray(result[have[0]]["pca"]["real_coords"])
    colors = figures.class_colors(ctx.data.num_classes)
    fig, axes = figures.panel_grid(len(have))
    for ax, name in zip(axes, have):
        pca = result[name]["pca"]
        xy, labels = np.asarray(pca["synthetic_coords"]), ctx.generators[name].labels
        ax.scatter(real[:, 0], real[:, 1], s=3, color="0.8", lw=0, rasterized=True)
        ax.scatter(xy[:, 0], xy[:, 1], s=3, lw=0, alpha=0.8,
                   c=[colors[c] for c in labels], rasterized=True)
        w = np.asarray(pca["wasserstein_sd"][:2], np.float64)
        figures.title(ax, name, f"W1 on PC1-2 {figures.fmt(float(np.nanmean(w)), 2)} sd",
                      role=figures.role_of(name, ctx.synthetic))
    figures.label_axes(axes, "PC1", "PC2")
    handles = [Line2D([], [], ls="", marker="o", color="0.75", label="real train")]
    handles += [Line2D([], [], ls="", marker="o", color=colors[i], label=c)
                for i, c in enumerate(ctx.data.class_names)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 10),
               fontsize=7, markerscale=0.8, frameon=False)
    return {"PCA of real training people (grey) with each generator's people, by class":
            save(fig, "pca_overlay.png")}


SECTIONS.register("fidelity", Section(compute, COLUMNS, plots=plots, legend=LEGEND))
