"""The sweep's cells read as curves (one per sampler, guidance weight and temperature, over the
number of steps) and the table of where each curve settles.

`steps_within(points, tolerance)`: the fewest steps from which a curve stays within `tolerance`
(relative) of its value at its largest step count: |q(k') - q(K)| <= tolerance |q(K)| for every
k' >= k on the curve. Staying, not touching once: a noisy curve that crosses its final value
early is not settled there. None when the value at K is undefined.
"""

from __future__ import annotations

from collections.abc import Sequence

CELL_KEYS = ("sampler", "guidance", "temperature")  # what a curve is; steps run along it


def curve_of(row: dict) -> tuple:
    return tuple(row.get(k) for k in CELL_KEYS)


def curve_label(key: tuple, rows: Sequence[dict]) -> str:
    """"dpmpp", or "dpmpp w=0.5 T=0.8" where the grid has several guidance weights or
    temperatures (only the axes that vary are named)."""
    sampler, w, t = key
    label = [sampler]
    if len({r.get("guidance") for r in rows}) > 1:
        label.append(f"w={w:g}")
    if len({r.get("temperature") for r in rows if r.get("temperature") is not None}) > 1 \
            and t is not None:
        label.append(f"T={t:g}")
    return " ".join(label)


def curves(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """{label: the curve's rows by increasing steps}, curves in the order they first appear."""
    keys: dict[tuple, list[dict]] = {}
    for row in rows:
        keys.setdefault(curve_of(row), []).append(row)
    return {curve_label(k, rows): sorted(v, key=lambda r: r["steps"]) for k, v in keys.items()}


def steps_within(points: Sequence[tuple[int, float | None]], tolerance: float) -> int | None:
    """The fewest steps from which the curve stays within `tolerance` of its last value (see the
    module docstring); `points` are (steps, value) by increasing steps."""
    if not points or points[-1][1] is None:
        return None
    final = points[-1][1]
    settled = points[-1][0]
    for steps, value in reversed(points):
        if value is None or abs(value - final) > tolerance * abs(final):
            break
        settled = steps
    return settled


def convergence_table(rows: Sequence[dict], measures: Sequence[str],
                      tolerance: float) -> list[dict]:
    """One row per curve: its sampler, guidance, temperature, largest step count, and for each
    measure the steps at which it settles (`steps_within`) and its value at the largest count."""
    table = []
    for label, points in curves(rows).items():
        first = points[0]
        entry = {"curve": label, **{k: first.get(k) for k in CELL_KEYS},
                 "max_steps": points[-1]["steps"]}
        for name in measures:
            entry[name] = steps_within([(p["steps"], p.get(name)) for p in points], tolerance)
            entry[f"{name}_at_max_steps"] = points[-1].get(name)
        table.append(entry)
    return table
