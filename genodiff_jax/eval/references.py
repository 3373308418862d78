"""Reference cohorts, so every metric can be read next to known-good and known-bad generators.

Found by name in `REFERENCES`; each is
`fn(train_calls, train_labels, labels, rng, *, test_calls=None, test_labels=None) -> (calls int8
[n, S], labels [n])`, where `labels` is either the labels to generate (an array, e.g. the synthetic
cohort's, so a reference matches it class for class) or an int: that many people per training class.

- `real_test`: the real test split itself, as given (`labels` and `rng` are ignored): the ideal.
- `independent_sites`: every call drawn independently as Binomial(2, p_c) from the training allele
  frequency p_c of the person's class (Hardy-Weinberg at each site): keeps AF, destroys LD.
- `train_copies`: training genomes of the same class, drawn with replacement: perfect fidelity and
  the privacy failure.

They work on genotype calls; the features of a reference come from encoding it with the codec.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genodiff_jax.registry import Registry

RefFn = Callable[..., tuple[np.ndarray, np.ndarray]]
REFERENCES: Registry[RefFn] = Registry("reference")
_ROWS = 1024  # people drawn per block in independent_sites (bounds the int64 binomial draws)


def register_reference(name: str) -> Callable[[RefFn], RefFn]:
    """Register `fn(train_calls, train_labels, labels, rng, **splits) -> (calls, labels)`."""
    return REFERENCES.register(name)


def get_reference(name: str) -> RefFn:
    """The reference registered as `name` (an unknown name raises a ValueError listing them)."""
    return REFERENCES[name]


def requested_labels(train_labels: np.ndarray | None, labels: np.ndarray | int, n_train: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train labels, labels to generate) as arrays; no training labels = one class 0."""
    train_labels = np.zeros(n_train, np.int64) if train_labels is None else np.asarray(train_labels)
    if np.ndim(labels) == 0:
        classes = np.unique(train_labels)
        return train_labels, np.repeat(classes, int(labels))
    labels = np.asarray(labels)
    unknown = np.setdiff1d(labels, train_labels)
    if unknown.size:
        raise ValueError(f"labels {unknown.tolist()} have no training examples")
    return train_labels, labels


@register_reference("real_test")
def real_test(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    *,
    test_calls: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The real test split, unchanged."""
    if test_calls is None:
        raise ValueError("the real_test reference needs test_calls")
    test_calls = np.asarray(test_calls, np.int8)
    if test_labels is None:
        test_labels = np.zeros(len(test_calls), np.int64)
    return test_calls, np.asarray(test_labels)


@register_reference("independent_sites")
def independent_sites(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Independent Binomial(2, p_c) calls from per-class training allele frequencies."""
    train_calls = np.asarray(train_calls)
    train_labels, labels = requested_labels(train_labels, labels, len(train_calls))
    out = np.empty((len(labels), train_calls.shape[1]), np.int8)
    for c in np.unique(labels):
        p = train_calls[train_labels == c].mean(axis=0, dtype=np.float64) / 2.0
        rows = np.flatnonzero(labels == c)
        for i in range(0, len(rows), _ROWS):
            block = rows[i:i + _ROWS]
            out[block] = rng.binomial(2, p, size=(len(block), p.size))
    return out, labels


@register_reference("train_copies")
def train_copies(
    train_calls: np.ndarray,
    train_labels: np.ndarray | None,
    labels: np.ndarray | int,
    rng: np.random.Generator,
    **_splits: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training genomes of the requested class, drawn with replacement."""
    train_calls = np.asarray(train_calls, np.int8)
    train_labels, labels = requested_labels(train_labels, labels, len(train_calls))
    pick = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        pick[rows] = rng.choice(np.flatnonzero(train_labels == c), size=len(rows), replace=True)
    return train_calls[pick], labels
