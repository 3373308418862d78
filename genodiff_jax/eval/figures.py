"""Small multiples for the report's per-generator plots: one panel per generator in a grid of at
most `MAX_COLUMNS` panels a row, the reference panels first, shared axes and one colour bar.

Panel order (`panel_order`): the real reference panels (`real_test`, the real held-out people: the
ideal), then the models, then the other references. A plot that has a real training panel (LD)
puts it before all of them. The report's pages are read at about 1200 pixels: `MAX_COLUMNS`
panels of `PANEL_INCHES` at the report's `DPI` keep a plot under that width plus its colour bar
(a test checks every plot stays under 2000 pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from genodiff_jax.eval.references import FLOORS, REAL_IDEAL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_COLUMNS = 4
PANEL_INCHES = 2.7
DPI = 110  # render.write_plots saves at this resolution


def panel_order(generators: Sequence[str], models: Sequence[str]) -> list[str]:
    """`real_test` first (the reference panel), then the models, then the other references."""
    models = [g for g in models if g in generators]
    ideal = [g for g in generators if g == REAL_IDEAL]
    return ideal + models + [g for g in generators if g not in models and g != REAL_IDEAL]


def panel_grid(n: int, *, colorbar: bool = False, share: bool = True,
               panel: float = PANEL_INCHES, extra_height: float = 0.0
               ) -> tuple[Figure, list[Axes]]:
    """A figure of `n` panels, at most `MAX_COLUMNS` a row, shared x and y axes (`share`), room
    for one colour bar on the right; the grid's unused cells hidden; `extra_height` inches more a
    row (for long tick labels). Laid out by matplotlib's constrained layout (the report's save
    helper leaves such a figure's layout alone)."""
    import matplotlib.pyplot as plt

    columns = max(1, min(MAX_COLUMNS, n))
    rows = max(1, math.ceil(n / columns))
    width = panel * columns + (0.9 if colorbar else 0.2)
    height = (panel + extra_height) * rows + 0.35
    fig, axes = plt.subplots(rows, columns, figsize=(width, height),
                             sharex=share, sharey=share, squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def title(ax: Axes, name: str, headline: str, *, role: str | None = None) -> None:
    """A panel's title: the generator's name (its role after it, e.g. "ideal") over its headline
    figure; models in bold."""
    label = f"{name} ({role})" if role else name
    ax.set_title(f"{label}\n{headline}", fontsize=8.5,
                 fontweight="bold" if role == "model" else "normal")


def role_of(name: str, models: Sequence[str]) -> str | None:
    """"model", "ideal", "floor" or None (another reference)."""
    if name in models:
        return "model"
    if name == REAL_IDEAL:
        return "ideal"
    return "floor" if name in FLOORS else None


def fmt(value, digits: int = 3) -> str:
    """A number for a title; "-" where there is none (None, NaN)."""
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "-"


def class_colors(n: int) -> list:
    """One distinct colour per class (tab10 up to 10 classes, tab20 up to 20, then a hue wheel)."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "hsv")
    return [cmap(i if n <= 20 else i / n) for i in range(n)]


def label_axes(axes: Sequence[Axes], xlabel: str, ylabel: str, *, fontsize: float = 9) -> None:
    """Axis labels on the left column and on the lowest panel of each column (with its tick
    labels, which a shared axis hides above an empty cell)."""
    columns = max(1, min(MAX_COLUMNS, len(axes)))
    for i, ax in enumerate(axes):
        if i + columns >= len(axes):
            ax.set_xlabel(xlabel, fontsize=fontsize)
            ax.xaxis.set_tick_params(labelbottom=True)
        if i % columns == 0:
            ax.set_ylabel(ylabel, fontsize=fontsize)
