"""Sample panels (labels per person) and gene BEDs: reading, writing, chromosome names."""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_file
from genodiff_jax.errors import InputError, require_file


@dataclasses.dataclass(frozen=True)
class Panel:
    """Per-sample labels: `sample` ids and named columns (pop, super_pop, traits ...)."""

    samples: np.ndarray
    columns: dict[str, np.ndarray]


def read_panel(path: str | os.PathLike) -> Panel:
    """A tab- or space-separated table with a header whose first column is the sample id."""
    path = Path(path)
    require_file(path)
    with open(path, newline="") as f:
        lines = [line.split() for line in f if line.strip()]
    if not lines:
        raise InputError(path, "panel file is empty")
    header, rows = lines[0], lines[1:]
    if header[0].lower() not in ("sample", "sample_id", "iid", "id"):
        raise InputError(path, "panel header must start with a 'sample' column, "
                               f"found '{header[0]}'")
    if not rows:
        raise InputError(path, "panel has a header but no samples")
    for lineno, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InputError(path, f"line {lineno} has {len(row)} fields, header has {len(header)}")
    table = np.array(rows, dtype=str)
    samples = table[:, 0]
    unique, counts = np.unique(samples, return_counts=True)
    if (counts > 1).any():
        raise InputError(path, f"duplicate sample ids: {', '.join(unique[counts > 1][:3])}")
    return Panel(samples, {name: table[:, j] for j, name in enumerate(header[1:], start=1)})


def write_panel(path: str | os.PathLike, samples: Sequence[str],
                columns: dict[str, Sequence]) -> None:
    """Write a panel: header `sample<TAB>col...`, one row per sample."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["sample", *columns])
        for i, sample in enumerate(samples):
            writer.writerow([sample, *(values[i] for values in columns.values())])


@dataclasses.dataclass(frozen=True)
class GeneTable:
    """Gene bodies: chromosome, 0-based start, exclusive end, name."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    name: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def read_bed(path: str | os.PathLike) -> GeneTable:
    """A BED file of gene bodies (at least chrom, start, end, name);
    track/browser/# lines skipped."""
    path = Path(path)
    require_file(path)
    chrom, start, end, name = [], [], [], []
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.split()
            if len(fields) < 3:
                raise InputError(path, f"line {lineno} has {len(fields)} fields, BED needs >= 3")
            try:
                s, e = int(fields[1]), int(fields[2])
            except ValueError:
                raise InputError(path, f"line {lineno}: start/end are not integers") from None
            if s < 0 or e <= s:
                raise InputError(path, f"line {lineno}: bad interval {s}-{e}")
            chrom.append(normalise_chrom(fields[0]))
            start.append(s)
            end.append(e)
            name.append(fields[3] if len(fields) > 3 else f"{fields[0]}:{s}-{e}")
    if not start:
        raise InputError(path, "BED file has no intervals")
    return GeneTable(np.array(chrom, dtype=str), np.array(start, np.int64), np.array(end, np.int64),
                     np.array(name, dtype=str))


def write_bed(path: str | os.PathLike, chrom: Sequence, start: Sequence, end: Sequence,
              name: Sequence) -> None:
    """Write a 4-column gene BED (0-based start, exclusive end)."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        for c, s, e, n in zip(chrom, start, end, name):
            f.write(f"{c}\t{int(s)}\t{int(e)}\t{n}\n")


def normalise_chrom(name: str) -> str:
    """'chr2' and '2' name the same chromosome."""
    name = str(name)
    return name[3:] if name.lower().startswith("chr") else name
