"""Load a prepared dataset, and put a whole split into device memory (sharded by batch on a mesh)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import numpy as np

from genodiff_jax.data import io
from genodiff_jax.data import tfds as tfds_io
from genodiff_jax.data.codec import GeneCodec
from genodiff_jax.data.prepare import CODEC, SUMMARY, VARIANTS
from genodiff_jax.errors import InputError


@dataclasses.dataclass
class Split:
    """One split in host memory: features [n, G, K] float32, labels [n] int32, ids and row indices."""

    features: np.ndarray
    labels: np.ndarray
    samples: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass
class PreparedDataset:
    """A `genodiff prepare` folder: both splits, the mask, the classes, the codec on demand."""

    path: Path
    summary: dict
    train: Split
    test: Split
    mask: np.ndarray

    @property
    def class_names(self) -> list[str]:
        return self.summary["class_names"]

    @property
    def num_classes(self) -> int:
        return self.summary["n_classes"]

    @functools.cached_property
    def codec(self) -> GeneCodec:
        return GeneCodec.load(self.path / CODEC)

    @functools.cached_property
    def variants(self) -> io.Variants:
        with np.load(self.path / VARIANTS) as z:
            return io.Variants(**{k: z[k] for k in z.files})


def load_prepared(data_dir: str | os.PathLike) -> PreparedDataset:
    """Read summary, mask and both splits (through `tfds.data_source`)."""
    path = Path(data_dir)
    if not (path / SUMMARY).is_file():
        raise InputError(path, f"not a prepared dataset (no {SUMMARY}); run `genodiff prepare`")
    summary = json.loads((path / SUMMARY).read_text())
    with np.load(path / CODEC) as z:
        mask = z["mask"].astype(bool)
    splits = {}
    for name in ("train", "test"):
        arrays = tfds_io.read_split(path, name)
        splits[name] = Split(arrays["features"], arrays["label"], arrays["sample"], arrays["index"])
    return PreparedDataset(path, summary, splits["train"], splits["test"], mask)


def to_device(split: Split, sharding=None) -> dict:
    """The whole split as device arrays: `features` [n_pad, G, K], `labels` [n_pad], and `n` (valid rows).

    With a `NamedSharding` over the batch axis, rows are padded (by repeating row 0) to a multiple of
    the number of shards; batches are drawn from the first `n` rows only.
    """
    import jax

    features, labels = split.features, split.labels
    n = len(labels)
    if sharding is not None:
        shards = sharding.mesh.size
        pad = -n % shards
        if pad:
            features = np.concatenate([features, np.repeat(features[:1], pad, axis=0)])
            labels = np.concatenate([labels, np.repeat(labels[:1], pad)])
        put = functools.partial(jax.device_put, device=sharding)
    else:
        put = jax.device_put
    return {"features": put(features), "labels": put(labels), "n": n}
