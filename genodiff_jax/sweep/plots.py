"""The sweep's pictures: for each panel measure one PNG, the measure against the number of steps
(left) and against sampling seconds, compile time apart (right), one curve per sampler (and
guidance weight / temperature where those vary). The real training people's value (scored
against the held-out people like every cell) is a dashed line, a perfect generator's a dotted
one. Nothing here computes a number."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genodiff_jax.sweep.curves import curves
from genodiff_jax.sweep.panel import PANEL


def plot_file(measure: str) -> str:
    return f"sweep_{measure}.png"


def write_plots(folder: Path, rows: Sequence[dict], measures: Sequence[str],
                reference: dict | None = None) -> list[str]:
    """One PNG per measure that has a value somewhere, into `folder`; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and no GUI backend to start on a server
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    lines = curves(rows)
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.06, not 6 x 10^-2
    seconds = [r["sample_s"] for r in rows if r.get("sample_s")]
    short = bool(seconds) and max(seconds) / min(seconds) < 20  # label minor ticks too
    files = []
    for name in measures:
        if all(r.get(name) is None for r in rows):
            continue
        measure = PANEL[name]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for (label, points), marker in zip(lines.items(), "osD^v<>px*h" * 10):
            points = [p for p in points if p.get(name) is not None]
            values = [p[name] for p in points]
            axes[0].plot([p["steps"] for p in points], values, marker=marker, label=label)
            axes[1].plot([max(p["sample_s"], 1e-4) for p in points], values, marker=marker,
                         label=label)
        for ax, xlabel in zip(axes, ("sampling steps", "sampling seconds (compile apart)")):
            if reference is not None and reference.get(name) is not None:
                ax.axhline(reference[name], color="0.4", ls="--", lw=1,
                           label="real train vs held-out")
            if measure.ideal is not None:
                ax.axhline(measure.ideal, color="0.6", ls=":", lw=1, label="ideal")
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        axes[0].set_xticks(sorted({r["steps"] for r in rows}))
        axes[0].xaxis.set_major_formatter(plain)
        axes[0].xaxis.set_minor_formatter(NullFormatter())
        axes[1].xaxis.set_major_formatter(plain)
        axes[1].xaxis.set_minor_formatter(plain if short else NullFormatter())
        axes[0].set_ylabel(measure.label)
        axes[1].legend(fontsize=8, loc="best")
        fig.suptitle(measure.label)
        # Fixed margins: tight_layout took half of a sweep's plotting time.
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.88, wspace=0.06)
        file = plot_file(name)
        fig.savefig(folder / file, dpi=110)
        plt.close(fig)
        files.append(file)
    return files
