"""The evaluation-section interface and the `SECTIONS` registry.

A section is one family of metrics in the report, registered under the key its numbers get in
report.json (`report[name]`):

    SECTIONS.register("toy", Section(compute=fn, columns=[("mean AF", cell_fn)]))

- `compute(ctx) -> dict`: the numbers, from an `EvalContext`;
- `columns`: its summary-table columns, `(header, fn(result, generator_name) -> cell)`; `result`
  is what `compute` returned, or its JSON form when a report is read back, so read it as plain
  dicts and lists;
- `plots(ctx, result, save) -> {title: file}`: optional pictures; `save(figure, file_name)` writes
  a matplotlib figure into the report folder, closes it and returns the file name;
- `tables(result) -> [(title, header, rows)]`: optional extra HTML tables;
- `legend`: {column header: one line} for the summary's legend: what the column measures, which
  direction is better, the ideal value.

`EvalSettings.sections` names the sections a report runs, in order; the summary columns follow it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from genodiff_jax.eval.references import FLOORS, REAL_IDEAL  # noqa: F401  (re-exported)
from genodiff_jax.registry import Registry

if TYPE_CHECKING:  # for annotations only
    from matplotlib.figure import Figure

    from genodiff_jax.data.loader import PreparedDataset

# What a report runs unless told otherwise (`EvalSettings.sections`, `--sections`).
DEFAULT_SECTIONS = ("transfer", "nnaa", "fidelity", "privacy", "two_sample", "haplotype_privacy",
                    "per_class")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What to run and how hard: CI uses tiny values, real runs the defaults. `sections` are names
    in `SECTIONS`, run in this order; the other fields tune the built-in sections."""

    classifiers: tuple[str, ...] = ("mlp", "cnn", "transformer")  # Flax, on features
    seeds: tuple[int, ...] = (0, 1, 2)
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)
    augmentation_classifier: str = "mlp"
    references: tuple[str, ...] = ("real_test", "independent_sites", "train_copies", "mosaic",
                                   "codec_roundtrip")
    classifier_epochs: int = 30
    max_nnaa: int = 3000  # people per set in NNAA: a memorising model is seen when >= N_train
    ld_window: int = 100
    seed: int = 0
    sections: tuple[str, ...] = DEFAULT_SECTIONS
    # New fields go last, so positional construction still works.
    mosaic_segments: tuple[int, ...] = (20, 100, 500)  # "mosaic" -> mosaic_<N> per mean length
    snp_logreg: bool = True  # SNP-level logistic regression in the recovery table
    two_sample_folds: int = 5
    max_two_sample: int = 2000  # people per side in the two-sample test
    max_run_people: int = 300  # people per generator whose longest identical runs are measured
    # codec_roundtrip_<method>, one per calling method
    roundtrip_calling: tuple[str, ...] = ("round", "frequency", "hybrid")


@dataclasses.dataclass
class Generator:
    """A cohort to score: genotype calls int8 [n, S], features [n, G, K], labels [n], and
    haplotypes int8 [n, 2, S] (calls = their sum) where the generator has them."""

    calls: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    haplotypes: np.ndarray | None = None


Column = tuple[str, Callable[[dict, str], Any]]
Table = tuple[str, Sequence[str], list[list]]
SaveFigure = Callable[["Figure", str], str]


def split_haplotypes(data: PreparedDataset, split: str) -> np.ndarray | None:
    """A split's haplotypes int8 [n, 2, S] (memory-mapped) when the dataset stored haplotype
    tokens, else None."""
    return data.tokens(split) if data.token_kind == "haplotypes" else None


@dataclasses.dataclass(frozen=True)
class EvalContext:
    """What every section sees: the prepared dataset, the real genotype calls [N, S] (rows in
    genotype-file order, as the splits' `index`), the generators to score and the settings; the
    real splits' haplotypes where the dataset has them."""

    data: PreparedDataset
    calls: np.ndarray
    generators: dict[str, Generator]
    settings: EvalSettings
    synthetic: tuple[str, ...] = ("model",)  # the generators that are models (the rest: references)

    # Properties, not cached copies: a section takes the split it needs and lets it go.
    @property
    def train_calls(self) -> np.ndarray:
        return self.calls[self.data.train.index]

    @property
    def test_calls(self) -> np.ndarray:
        return self.calls[self.data.test.index]

    @property
    def train_haplotypes(self) -> np.ndarray | None:
        """[n_train, 2, S], or None when the dataset has no haplotype tokens."""
        return split_haplotypes(self.data, "train")

    @property
    def test_haplotypes(self) -> np.ndarray | None:
        return split_haplotypes(self.data, "test")


@dataclasses.dataclass(frozen=True)
class Section:
    """One report section: its numbers, its summary columns, its plots and extra tables."""

    compute: Callable[[EvalContext], dict]
    columns: Sequence[Column] = ()
    plots: Callable[[EvalContext, dict, SaveFigure], dict[str, str]] | None = None
    tables: Callable[[dict], list[Table]] | None = None
    legend: Mapping[str, str] = dataclasses.field(default_factory=dict)


SECTIONS: Registry[Section] = Registry("evaluation section")
