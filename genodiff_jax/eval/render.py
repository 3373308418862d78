"""The report's pictures and page, apart from the numbers: each section's plots drawn through one
save helper into the report folder, and report.html (summary table, the sections' extra tables,
the plots). Nothing here computes a metric."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.eval.sections import EvalContext, Section, Table

_REFERENCES_NOTE = (
    "References: <b>real_test</b>\n(the ideal), <b>codec_roundtrip_&lt;calling&gt;</b> (real "
    "training people through the codec and back,\ncalled by each method: what a perfect model of "
    "the features could reach; its privacy figures are\na copier's), "
    "<b>independent_sites</b> (per-population allele "
    "frequencies under Hardy-Weinberg: keeps\nAF, destroys LD), <b>train_copies</b> (copies of "
    "training genomes: the privacy failure), <b>mosaic_N</b>\n(same-population training "
    "haplotypes copied in segments of mean length N SNPs: keeps LD by\ncopying). Every number "
    "is in report.json.")


def write_plots(folder: Path, ctx: EvalContext, sections: dict[str, Section],
                results: dict[str, dict]) -> dict[str, str]:
    """Every section's plots, in section order, as PNGs in `folder`; returns {title: file name}."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI backend to start on a server
    import matplotlib.pyplot as plt

    def save(fig, file: str) -> str:
        fig.tight_layout()
        fig.savefig(folder / file, dpi=110)
        plt.close(fig)
        return file

    plots: dict[str, str] = {}
    for name, section in sections.items():
        if section.plots is not None:
            plots.update(section.plots(ctx, results[name], save))
    return plots


def format_cell(value) -> str:
    """Floats to 3 decimals, anything else as escaped text."""
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return html.escape(str(value))


def html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{format_cell(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict, summary: tuple[Sequence[str], Sequence[Sequence]],
                tables: Sequence[Table], plots: dict[str, str]) -> str:
    """The page: the summary (header, rows), each (title, header, rows) table, the plots."""
    blocks = [f"<h2>Summary</h2>{html_table(*summary)}"]
    blocks += [f"<h2>{html.escape(title)}</h2>{html_table(header, rows)}"
               for title, header, rows in tables]
    figures = "".join(f'<figure><img src="{html.escape(f)}"><figcaption>{html.escape(t)}'
                      "</figcaption></figure>" for t, f in plots.items())
    blocks.append(f"<h2>Plots</h2>{figures}")
    body = "\n".join(blocks)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>genodiff-jax evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}
figure{{display:inline-block;margin:1em}}img{{max-width:100%}}</style></head><body>
<h1>Synthetic cohort evaluation</h1>
<p>{report['n_synthetic']} synthetic people, {report['n_train']} real training and
{report['n_test']} real test people, {report['n_variants']} variants. {_REFERENCES_NOTE}</p>
{body}
</body></html>
"""
