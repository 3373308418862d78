"""The report's pictures and page, apart from the numbers: each section's plots drawn through one
save helper into the report folder, and report.html (summary table, the sections' extra tables,
the plots). Nothing here computes a metric."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.eval import figures
from genodiff_jax.eval.sections import FLOORS, REAL_IDEAL, EvalContext, Section, Table

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
        if fig.get_layout_engine() is None:  # a small-multiples grid lays itself out
            fig.tight_layout()
        fig.savefig(folder / file, dpi=figures.DPI)
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


# The summary's row groups, in the order the page shows them: (title, which generators).
_GROUPS = (
    ("models", lambda name, models: name in models),
    ("ideal: real held-out people", lambda name, models: name == REAL_IDEAL),
    ("floors: what a trivial generator reaches (no LD; copies of training people)",
     lambda name, models: name in FLOORS),
    ("other references", lambda name, models: True),
)


def summary_table(header: Sequence[str], rows: Sequence[Sequence], models: Sequence[str],
                  legend: Mapping[str, str]) -> str:
    """The summary: the models' rows, then the ideal, then the floors, then the other references,
    each group under its own heading row; each column's legend line as its tooltip and in a list
    below the table."""
    head = "".join(f'<th title="{html.escape(legend.get(h, ""))}">{html.escape(h)}</th>'
                   for h in header)
    body, placed = [], set()
    for group, (title, member) in enumerate(_GROUPS):
        mine = [row for row in rows if row[0] not in placed and member(row[0], models)]
        if not mine:
            continue
        placed |= {row[0] for row in mine}
        body.append(f'<tr class="group"><td colspan="{len(header)}">{html.escape(title)}</td></tr>')
        css = ("model", "ideal", "floor", "reference")[group]
        body += [f'<tr class="{css}">' + "".join(f"<td>{format_cell(c)}</td>" for c in row)
                 + "</tr>" for row in mine]
    lines = "".join(f"<li><b>{html.escape(h)}</b>: {html.escape(legend[h])}</li>"
                    for h in header if h in legend)
    return (f'<div class="wide"><table class="summary"><tr>{head}</tr>{"".join(body)}</table></div>'
            + (f'<ul class="legend">{lines}</ul>' if lines else ""))


def render_html(report: dict, summary: tuple[Sequence[str], Sequence[Sequence]],
                tables: Sequence[Table], plots: dict[str, str],
                legend: Mapping[str, str] | None = None) -> str:
    """The page: the summary (header, rows; `legend` = {column: one line}), each (title, header,
    rows) table, the plots."""
    models = list(report.get("synthetic", {}))
    blocks = [f"<h2>Summary</h2>{summary_table(*summary, models, legend or {})}"]
    blocks += [f"<h2>{html.escape(title)}</h2>{html_table(header, rows)}"
               for title, header, rows in tables]
    figures_html = "".join(f"<figure><figcaption>{html.escape(t)}</figcaption>"
                           f'<img src="{html.escape(f)}"></figure>' for t, f in plots.items())
    blocks.append(f"<h2>Plots</h2>{figures_html}")
    body = "\n".join(blocks)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>genodiff-jax evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}
td:first-child{{text-align:left}}tr.group td{{text-align:left;font-weight:bold;background:#f6f6f6;
border-left:none;border-right:none;padding-top:8px}}tr.model td:first-child{{font-weight:bold}}
tr.ideal td{{background:#e8f5e9}}tr.floor td{{background:#fbe9e7;color:#555}}
div.wide{{overflow-x:auto}}table.summary{{font-size:0.8em}}table.summary td,table.summary th{{
padding:2px 5px}}ul.legend{{font-size:0.85em;color:#333;padding-left:1.2em}}
figure{{display:block;margin:1.5em 0}}img{{max-width:100%}}figcaption{{font-weight:bold}}</style>
</head><body>
<h1>Synthetic cohort evaluation</h1>
<p>{report['n_synthetic']} synthetic people, {report['n_train']} real training and
{report['n_test']} real test people, {report['n_variants']} variants. {_REFERENCES_NOTE}</p>
{body}
</body></html>
"""
