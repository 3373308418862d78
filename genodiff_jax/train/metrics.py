"""Scalar logging: `metrics.jsonl` (one JSON object a line) and TensorBoard event files.

TensorBoard files come from tensorboardX, which writes the event protos without TensorFlow. Only
process 0 writes; on other processes the writer does nothing.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from genodiff_jax.atomic import atomic_file

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def json_value(v):
    """Plain Python numbers; NaN/inf as strings, since JSON has no literal for them; mappings
    (a stop's details) field by field."""
    if isinstance(v, bool | int | str) or v is None:
        return v
    if isinstance(v, Mapping):
        return {str(k): json_value(x) for k, x in v.items()}
    v = float(v)
    return v if math.isfinite(v) else str(v)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a metrics.jsonl (an absent file: none); a torn last line is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut off by a kill
    return records


def truncate_after(path: str | os.PathLike, step: int) -> None:
    """Drop records past `step`: a resumed run logs those steps again from its checkpoint."""
    path = Path(path)
    records = read_metrics(path)
    kept = [r for r in records if r.get("step", 0) <= step]
    if len(kept) == len(records) and path.is_file() and path.read_text().endswith("\n"):
        return
    with atomic_file(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))


def annotate(path: str | os.PathLike, step: int, fields: Mapping) -> None:
    """Add `fields` to the last record of `step` (a record of its own when there is none)."""
    path = Path(path)
    records = read_metrics(path)
    at = [i for i, r in enumerate(records) if r.get("step") == step]
    fields = {k: json_value(v) for k, v in fields.items()}
    if at:
        records[at[-1]].update(fields)
    else:
        records.append({"step": int(step), **fields})
    with atomic_file(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))


class MetricsWriter:
    """Append scalars to workdir/metrics.jsonl and to TensorBoard (workdir/tensorboard/)."""

    def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True,
                 tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(workdir) / METRICS_FILE
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:  # the JSONL log is the record; TensorBoard is a convenience
                warnings.warn("tensorboardX is not installed: no TensorBoard files", stacklevel=2)
            else:
                self._tb = SummaryWriter(str(Path(workdir) / TENSORBOARD_DIR))

    def write(self, step: int, scalars: Mapping[str, float]) -> dict:
        """Log one record {"step": step, **scalars}; return it as written."""
        record = {"step": int(step), **{k: json_value(v) for k, v in scalars.items()}}
        if not self.enabled:
            return record
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for name, value in record.items():
                if (name != "step" and isinstance(value, int | float)
                        and not isinstance(value, bool)):
                    self._tb.add_scalar(name, float(value), int(step))
            self._tb.flush()
        return record

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
