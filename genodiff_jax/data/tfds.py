"""The prepared features as a TFDS dataset in array_record files,
written and read without TensorFlow.

Records keep the order they were written in (`disable_shuffling`), and each carries its row `index`
in the original genotype matrix, so features, labels and genotypes stay aligned.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from pathlib import Path

import numpy as np

DATASET_NAME = "genotype_features"
TFDS_DIR = "tfds"  # inside a prepared dataset folder


@functools.cache
def _builder_class():
    """Defined lazily: importing tensorflow_datasets costs start-up time
    the CLI's --help need not pay."""
    import tensorflow_datasets as tfds

    class LocalInfo(tfds.core.DatasetInfo):
        """Never looked up on TFDS's bucket (the lookup leaves an empty folder in /tmp)."""

        def initialize_from_bucket(self) -> None:
            pass

    # Not registered by name: readers find the dataset from its files (features.json,
    # dataset_info.json), so reading needs no code of ours.
    class GenotypeFeatures(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Per-gene PCA features [G_pad, K], class label, sample id and row index of each person."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Per-gene PCA features, z-scored on the training split."}

        def __init__(self, *, splits: dict[str, dict[str, np.ndarray]] | None = None,
                     feature_shape: tuple[int, int] | None = None, **kwargs):
            self._splits = splits or {}
            self._feature_shape = feature_shape
            super().__init__(**kwargs)

        def _info(self):
            return LocalInfo(
                builder=self,
                description=self.__doc__,
                features=tfds.features.FeaturesDict({
                    "features": tfds.features.Tensor(shape=self._feature_shape, dtype=np.float32),
                    "label": tfds.features.Scalar(dtype=np.int64),
                    "sample": tfds.features.Text(),
                    "index": tfds.features.Scalar(dtype=np.int64),
                }),
                disable_shuffling=True,
            )

        def _split_generators(self, dl_manager):
            return {name: self._generate_examples(arrays) for name, arrays in self._splits.items()}

        def _generate_examples(self, arrays):
            for i in range(len(arrays["label"])):
                yield i, {key: arrays[key][i] for key in ("features", "label", "sample", "index")}

    return GenotypeFeatures


def write_dataset(data_dir: str | os.PathLike, splits: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write splits (each: features [n, G, K] float32, label, sample, index) as array_record."""
    import tensorflow_datasets as tfds

    feature_shape = tuple(next(iter(splits.values()))["features"].shape[1:])
    builder = _builder_class()(splits=splits, feature_shape=feature_shape,
                               data_dir=os.fspath(Path(data_dir) / TFDS_DIR),
                               file_format="array_record")
    tfds.disable_progress_bar()
    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints "Downloading and preparing..."
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
    return Path(builder.data_dir)


def read_split(data_dir: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """Read one split back through `tfds.data_source` (random access, no TensorFlow) into arrays."""
    import tensorflow_datasets as tfds

    source = tfds.data_source(DATASET_NAME, data_dir=os.fspath(Path(data_dir) / TFDS_DIR),
                              split=split, download=False)
    records = source.__getitems__(list(range(len(source)))) if len(source) else []
    return {
        "features": np.stack([r["features"] for r in records]).astype(np.float32),
        "label": np.array([r["label"] for r in records], np.int32),
        "sample": np.array([_text(r["sample"]) for r in records], dtype=str),
        "index": np.array([r["index"] for r in records], np.int64),
    }


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
