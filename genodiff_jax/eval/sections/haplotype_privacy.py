"""Section `haplotype_privacy`: per person, the longest run of consecutive SNPs identical to some
training haplotype (the maximum over the person's two haplotypes and all training haplotypes; see
`eval/segments.py`), as a distribution per generator beside real held-out people (the baseline;
for `real_test` its own row). Where the training split or a generator has no haplotypes, the
person's genotype row against training genotype rows instead ("unit": "genotypes"; such a row is
marked in the summary when the others are haplotype runs). `EvalSettings.max_run_people` people
per generator (seeded). report["haplotype_privacy"] = {generator: {"unit", "n_people",
"n_sites", "median", "p90", "p99", "max", "mean", "share_full_length",
"share_above_baseline_p99", "copies_more_than_real" (which of median and p99 are longer than
real held-out people's: the report's flag), "fallback", "baseline": {...}, "values" (per person,
plots only)}}.
"""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.sections.base import (
    REAL_IDEAL,
    SECTIONS,
    EvalContext,
    SaveFigure,
    Section,
    Table,
)


def compute(ctx: EvalContext) -> dict:
    """Longest identical runs of every generator and of the real held-out baseline."""
    from genodiff_jax.eval.segments import person_longest_runs, run_summary

    settings = ctx.settings
    train_haplotypes = ctx.train_haplotypes
    references = {"genotypes": ctx.train_calls}
    if train_haplotypes is not None:
        references["haplotypes"] = np.asarray(train_haplotypes)
    held_out = {"genotypes": ctx.test_calls, "haplotypes": ctx.test_haplotypes}

    def measure(people: np.ndarray, unit: str) -> dict:
        rng = np.random.default_rng(settings.seed)  # each generator draws its own, alike
        n = min(len(people), settings.max_run_people)
        rows = np.sort(rng.choice(len(people), n, replace=False))
        runs = person_longest_runs(np.asarray(people[rows]), references[unit])
        n_sites = references[unit].shape[-1]
        return {"unit": unit, "n_people": int(n), "n_sites": int(n_sites), **run_summary(runs),
                "share_full_length": float(np.mean(runs == n_sites)) if n else None,
                "values": runs}

    baselines: dict[str, dict] = {}

    def baseline(unit: str) -> dict:
        if unit not in baselines:
            baselines[unit] = measure(held_out[unit], unit)
        return baselines[unit]

    out = {}
    for name, gen in ctx.generators.items():
        unit = "haplotypes" if "haplotypes" in references and gen.haplotypes is not None \
            else "genotypes"
        result = baseline(unit) if name == REAL_IDEAL else measure(
            gen.haplotypes if unit == "haplotypes" else gen.calls, unit)
        base = baseline(unit)
        out[name] = {**result, "fallback": unit == "genotypes" and "haplotypes" in references,
                     "share_above_baseline_p99": float(np.mean(result["values"] > base["p99"])),
                     "copies_more_than_real": copies_more(result, base),
                     "baseline": {k: v for k, v in base.items() if k != "values"}}
    return out


def copies_more(result: dict, base: dict) -> list[str]:
    """Which of the median and the 99th percentile of the longest runs are longer than real
    held-out people's (the flag of a generator that copies its training split more than real
    people share with it); [] when neither is."""
    if not result["n_people"] or not base["n_people"]:
        return []
    return [stat for stat in ("median", "p99") if result[stat] > base[stat]]


def _flag(result: dict, generator: str) -> str:
    if generator == REAL_IDEAL or "copies_more_than_real" not in result[generator]:
        return "-"  # the ideal itself, or a report written before the flag
    longer = result[generator]["copies_more_than_real"]
    return f"COPIES MORE ({', '.join(longer)})" if longer else "no"


def _column(stat: str):
    def cell(result: dict, generator: str):
        row = result[generator]
        if row[stat] is None:
            return "-"
        return f"{row[stat]:g} (genotypes)" if row["fallback"] else row[stat]
    return cell


COLUMNS = [("longest identical run (median)", _column("median")),
           ("longest identical run (p99)", _column("p99")),
           ("copies more than real_test", _flag)]


def plots(ctx: EvalContext, result: dict, save: SaveFigure) -> dict[str, str]:
    """Box plots of the longest runs per generator (log scale), the baseline's median and 99th
    percentile as lines; genotype-run rows starred."""
    import matplotlib.pyplot as plt

    names = [n for n in result if len(result[n].get("values", ())) > 0]
    if not names:
        return {}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names)), 3.6))
    ax.boxplot([np.maximum(result[n]["values"], 1) for n in names], whis=(1, 99),
               showfliers=True, flierprops={"markersize": 2})
    unit = result[REAL_IDEAL]["unit"] if REAL_IDEAL in result else result[names[0]]["unit"]
    base = next(result[n]["baseline"] for n in names if result[n]["unit"] == unit)
    ax.axhline(base["median"], color="grey", lw=0.8, ls="--", label="real held-out median")
    ax.axhline(base["p99"], color="grey", lw=0.8, ls=":", label="real held-out p99")
    ax.axhline(result[names[0]]["n_sites"], color="red", lw=0.6, label="whole region")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(1, len(names) + 1),
                  [n + ("*" if result[n]["fallback"] else "") for n in names],
                  fontsize=8, rotation=30, ha="right")
    ax.set_ylabel(f"longest identical run (SNPs, {unit})")
    ax.legend(fontsize=7)
    return {"Longest run identical to a training sequence (* genotype runs)":
            save(fig, "longest_runs.png")}


def tables(result: dict) -> list[Table]:
    """Per generator: the run distribution, the baseline's, the share above its p99."""
    rows = [[gen, r["unit"], r["n_people"], r["median"], r["p90"], r["p99"], r["max"],
             r["share_full_length"], r["baseline"]["median"], r["baseline"]["p99"],
             r["share_above_baseline_p99"]] for gen, r in result.items()]
    return [("Longest run identical to a training sequence (SNPs)",
             ["generator", "unit", "people", "median", "p90", "p99", "max", "share whole region",
              "real median", "real p99", "share above real p99"], rows)]


LEGEND = {
    "longest identical run (median)": "median over people of the longest run (SNPs) identical "
                                      "to a training haplotype; about real_test's is ideal, "
                                      "higher means copying",
    "longest identical run (p99)": "its 99th percentile; about real_test's is ideal, the whole "
                                   "region means a copied haplotype",
    "copies more than real_test": "flagged where the median or the 99th percentile of the "
                                  "longest identical runs is longer than real held-out "
                                  "people's: the cohort copies its training split more than "
                                  "real people share with it",
}

SECTIONS.register("haplotype_privacy",
                  Section(compute, COLUMNS, plots=plots, tables=tables, legend=LEGEND))
