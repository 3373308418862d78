"""Load a prepared dataset, and put a whole split into device memory (sharded by rows on a mesh)."""

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
from genodiff_jax.data.prepare import CODEC, SUMMARY, TOKENS_DIR, VARIANTS, fingerprint
from genodiff_jax.errors import InputError


@dataclasses.dataclass
class Split:
    """One split in host memory: features [n, G, K] float32, labels [n] int32,
    ids and row indices."""

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
    def fingerprint(self) -> str | None:
        """The dataset's identity (`prepare.fingerprint`); computed for folders prepared before
        it was recorded; None for a dataset built in memory (no codec files)."""
        if self.summary.get("fingerprint"):
            return self.summary["fingerprint"]
        if not (Path(self.path) / CODEC).is_file():
            return None
        return fingerprint(self.path)

    @property
    def token_kind(self) -> str | None:
        """"haplotypes" or "genotypes" (None: prepared before tokens were stored)."""
        return self.summary.get("tokens")

    def tokens(self, split: str) -> np.ndarray:
        """A split's genotype tokens, memory-mapped: int8 [n, 2, S] haplotypes or [n, S] dosages,
        rows as the split's, columns as the variant table."""
        path = self.path / TOKENS_DIR / f"{split}.npy"
        if not path.is_file():
            raise InputError(self.path, f"no {TOKENS_DIR}/{split}.npy: prepared before genotype "
                                        "tokens were stored; run `genodiff prepare` again")
        return np.load(path, mmap_mode="r")

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


def put_data(x: np.ndarray, labels: np.ndarray, mesh) -> dict:
    """A split as the train step's `data`: {"x", "labels", "n"} global device arrays, rows split
    over the mesh and padded (by repeating row 0) to a multiple of it. `x` is an array or a dict of
    arrays with rows first, each keeping its dtype (float features, integer tokens).

    Batches are drawn from the first `n` rows only, so the padding is never trained on.
    """
    import jax

    from genodiff_jax.sharding import batch_sharding, put_global, replicated

    labels = np.asarray(labels, np.int32)
    n = len(labels)
    pad = -n % mesh.size

    def padded(a):
        a = np.asarray(a)
        if n == 0 or a.shape[0] != n:
            raise ValueError(f"need as many rows as labels (> 0), got {a.shape[0]}, {n}")
        return np.concatenate([a, np.repeat(a[:1], pad, axis=0)]) if pad else a

    rows = batch_sharding(mesh)
    return {"x": jax.tree.map(lambda a: put_global(padded(a), rows), x),
            "labels": put_global(padded(labels), rows),
            "n": put_global(np.int32(n), replicated(mesh))}
