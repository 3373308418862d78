"""Which labels to generate: strategies found by name in `LABEL_STRATEGIES`.

Every strategy turns target proportions (or counts) into exact class counts and returns them in a
seeded random order, int32 [N]. Counts come from largest-remainder rounding of N p, so each class
gets floor or ceil of its share: stratified, where the reference draws labels i.i.d. (same
expectation, no sampling noise in the class sizes).

- `uniform`: equal shares over all classes (the reference's 1KG setting);
- `train`: the training split's class frequencies;
- `counts`: explicit counts per class name, e.g. "CEU=10,YRI=5" (N is their sum);
- `case_rate`: a binary trait with a class named "case": round(N rate) cases (the reference's ALS
  setting, rate 0.3067), the other class for the rest.

`labels_from_spec` reads the one-string form a command line takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from genodiff_jax.errors import InputError
from genodiff_jax.registry import Registry

# strategy(n, class_names, **options) -> counts per class [C] (int64, summing to n, or n = None
# for strategies that fix N themselves).
CountsFn = Callable[..., np.ndarray]

LABEL_STRATEGIES: Registry[CountsFn] = Registry("label strategy")
register_labels = LABEL_STRATEGIES.register


def apportion(n: int, proportions: np.ndarray) -> np.ndarray:
    """Integer counts summing to n, each floor or ceil of n p (largest remainder; ties to the
    lower class index)."""
    p = np.asarray(proportions, np.float64)
    if n < 0 or p.ndim != 1 or p.size == 0 or np.any(p < 0) or p.sum() <= 0:
        raise InputError(None, f"cannot share {n} labels by proportions {p}")
    share = n * p / p.sum()
    counts = np.floor(share).astype(np.int64)
    remainder = share - counts
    order = np.argsort(-remainder, kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


@register_labels("uniform")
def uniform_counts(n: int, class_names: Sequence[str]) -> np.ndarray:
    """Equal shares over all classes."""
    return apportion(n, np.ones(len(class_names)))


@register_labels("train")
def train_counts(n: int, class_names: Sequence[str], *, train_labels: np.ndarray) -> np.ndarray:
    """The class frequencies of the training labels (int [n_train])."""
    freq = np.bincount(np.asarray(train_labels, np.int64), minlength=len(class_names))
    if freq.size != len(class_names):
        raise InputError(None, f"training labels go up to {freq.size - 1}, but there are only "
                               f"{len(class_names)} classes")
    return apportion(n, freq)


@register_labels("counts")
def explicit_counts(n: int | None, class_names: Sequence[str], *,
                    counts: dict[str, int]) -> np.ndarray:
    """Explicit counts per class name; N is their sum (an n given must agree)."""
    unknown = sorted(set(counts) - set(class_names))
    if unknown:
        raise InputError(None, f"unknown classes {unknown}; known: {list(class_names)}")
    if any(int(c) < 0 for c in counts.values()):
        raise InputError(None, f"label counts must be >= 0, got {counts}")
    out = np.array([int(counts.get(name, 0)) for name in class_names], np.int64)
    if out.sum() == 0:
        raise InputError(None, f"label counts sum to 0 people ({counts}); give at least one a "
                               "count > 0")
    if n is not None and out.sum() != n:
        raise InputError(None, f"label counts sum to {out.sum()}, but {n} samples were asked for")
    return out


@register_labels("case_rate")
def case_rate_counts(n: int, class_names: Sequence[str], *, case_rate: float) -> np.ndarray:
    """round(n rate) samples of the class named "case" (any case), the rest of the other class."""
    lower = [str(c).lower() for c in class_names]
    if len(class_names) != 2 or "case" not in lower:
        raise InputError(None, "a case rate needs two classes, one named 'case'; classes are "
                               f"{list(class_names)}")
    if not 0.0 <= case_rate <= 1.0:
        raise InputError(None, f"case rate must be in [0, 1], got {case_rate}")
    case = lower.index("case")
    out = np.zeros(2, np.int64)
    out[case] = int(np.floor(n * case_rate + 0.5))
    out[1 - case] = n - out[case]
    return out


def draw_labels(strategy: str, n: int | None, *, class_names: Sequence[str], seed: int = 0,
                **options) -> np.ndarray:
    """Labels int32 [N] by the strategy `strategy`, in an order shuffled by `seed`."""
    if strategy not in LABEL_STRATEGIES:
        raise InputError(None, f"unknown label strategy {strategy!r}; known: "
                               f"{sorted(LABEL_STRATEGIES)}")
    counts = LABEL_STRATEGIES[strategy](n, class_names, **options)
    labels = np.repeat(np.arange(len(class_names), dtype=np.int32), counts)
    # The order matters once the cohort is split into batches and rows get their own keys.
    return np.random.default_rng(seed).permutation(labels).astype(np.int32)


def labels_from_spec(spec: str, n: int | None, *, class_names: Sequence[str], seed: int = 0,
                     train_labels: np.ndarray | None = None) -> np.ndarray:
    """Labels from one string: "uniform", "train", "case_rate=0.3067" or "CEU=10,YRI=5"."""
    spec = spec.strip()
    if spec in ("uniform", "train"):
        if n is None:
            raise InputError(None, f"label strategy {spec!r} needs the number of samples")
        if spec == "train":
            if train_labels is None:
                raise InputError(None, "label strategy 'train' needs the training labels")
            return draw_labels("train", n, class_names=class_names, seed=seed,
                               train_labels=train_labels)
        return draw_labels("uniform", n, class_names=class_names, seed=seed)
    items = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    if not items or any(len(item) != 2 for item in items):
        raise InputError(None, f"bad label spec {spec!r}: use uniform, train, case_rate=R or "
                               "NAME=COUNT,NAME=COUNT")
    pairs = {k.strip(): v.strip() for k, v in items}
    try:
        if list(pairs) == ["case_rate"] and "case_rate" not in class_names:
            if n is None:
                raise InputError(None, "a case rate needs the number of samples")
            return draw_labels("case_rate", n, class_names=class_names, seed=seed,
                               case_rate=float(pairs["case_rate"]))
        counts = {k: int(v) for k, v in pairs.items()}
    except ValueError as e:
        raise InputError(None, f"bad label spec {spec!r}: {e}") from None
    return draw_labels("counts", n, class_names=class_names, seed=seed, counts=counts)
