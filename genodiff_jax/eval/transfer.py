"""Transfer from synthetic to real: the recovery rate and augmentation (DESIGN 1.4).

- `recovery_rates`: R = a_syn / a_real per classifier, where a_syn is the accuracy on held-out real
  data of a classifier trained on the synthetic cohort (labels: the ones it was generated with) and
  a_real that of the same classifier type trained on the real training split. Each seed trains both
  (same seed: same initialisation and batch order), R is taken per seed, then mean and spread.
- `augmentation`: a classifier trained on a stratified fraction of the real training split, alone
  and together with the whole synthetic cohort, tested on held-out real data.

Both return plain JSON-able dicts (floats, ints, lists). Spreads are sample standard deviations
over seeds (ddof=1; 0.0 for one seed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from genodiff_jax.eval.classifiers import FitSettings, fit_classifier

log = logging.getLogger(__name__)


class Labeled(NamedTuple):
    """A labelled set of people: features float32 [N, G, K] and int labels [N]."""

    features: np.ndarray
    labels: np.ndarray


def as_labeled(data: Any) -> Labeled:
    """A `Labeled` from one, from any object with `.features` and `.labels`, or a pair."""
    if hasattr(data, "features") and hasattr(data, "labels"):
        features, labels = data.features, data.labels
    else:
        features, labels = data
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    if features.ndim != 3 or labels.shape != (features.shape[0],):
        raise ValueError(f"need features [N, G, K] and labels [N], got {features.shape}, "
                         f"{labels.shape}")
    return Labeled(features, labels.astype(np.int64))


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    if len(seeds) == 0:
        raise ValueError("need at least one seed")
    return [int(s) for s in seeds]


def _num_classes(sets: Sequence[Labeled], num_classes: int | None) -> int:
    if num_classes is not None:
        return int(num_classes)
    return int(max(s.labels.max() for s in sets if len(s.labels)) + 1)


def _spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std) as plain floats; std 0.0 for a single value."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _fit_accuracy(name: str, train: Labeled, test: Labeled, num_classes: int, seed: int,
                  mask: np.ndarray | None, kwargs: Mapping[str, Any]) -> float:
    clf = fit_classifier(name, train.features, train.labels, num_classes, mask=mask, seed=seed,
                         fit=FitSettings(**kwargs))
    return clf.accuracy(test.features, test.labels)


def _fit_kwargs(name: str, fit_kwargs: Mapping[str, Any] | None,
                classifier_kwargs: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Common fit options overridden by the ones given for classifier `name`."""
    return {**(fit_kwargs or {}), **(classifier_kwargs or {}).get(name, {})}


def recovery_rates(
    train_real: Any,
    test_real: Any,
    synthetic: Any,
    *,
    classifiers: Sequence[str] = ("mlp", "cnn", "transformer"),
    seeds: Sequence[int] = (0, 1, 2),
    num_classes: int | None = None,
    mask: np.ndarray | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    classifier_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Recovery rate R = a_syn / a_real per classifier, over `seeds`.

    Each data argument is a `Labeled`, an object with `.features`/`.labels`, or a pair.
    `fit_kwargs` go to every `fit_classifier` call (epochs, lr, ...); `classifier_kwargs[name]`
    override them for one classifier (e.g. {"transformer": {"lr": 3e-4, "model_kwargs": {...}}}).

    Returns {name: {"a_real_mean", "a_real_std", "a_syn_mean", "a_syn_std", "recovery_mean",
    "recovery_std", "a_real", "a_syn", "recovery" (per seed), "seeds"}}. R of a seed whose a_real
    is 0 is undefined: then the recovery entries are None.
    """
    train, test, syn = as_labeled(train_real), as_labeled(test_real), as_labeled(synthetic)
    C = _num_classes([train, test, syn], num_classes)
    seeds = _check_seeds(seeds)
    out: dict[str, dict[str, Any]] = {}
    for name in classifiers:
        kwargs = _fit_kwargs(name, fit_kwargs, classifier_kwargs)
        a_real, a_syn = [], []
        for seed in seeds:
            a_real.append(_fit_accuracy(name, train, test, C, seed, mask, kwargs))
            a_syn.append(_fit_accuracy(name, syn, test, C, seed, mask, kwargs))
            log.info("recovery %s seed %d: a_real %.4f a_syn %.4f", name, seed, a_real[-1],
                     a_syn[-1])
        if min(a_real) > 0:
            recovery: list[float] | None = [s / r for s, r in zip(a_syn, a_real)]
            r_mean, r_std = _spread(recovery)
        else:
            recovery, r_mean, r_std = None, None, None
        real_mean, real_std = _spread(a_real)
        syn_mean, syn_std = _spread(a_syn)
        out[name] = {
            "a_real_mean": real_mean, "a_real_std": real_std,
            "a_syn_mean": syn_mean, "a_syn_std": syn_std,
            "recovery_mean": r_mean, "recovery_std": r_std,
            "a_real": a_real, "a_syn": a_syn, "recovery": recovery, "seeds": seeds,
        }
    return out


def stratified_subsample(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices: round(fraction * n_c) rows of each class c present (at least 1, at
    most n_c), drawn with `seed`.

    For one seed the subsets are nested (a smaller fraction takes a prefix of the same per-class
    order), so the fractions of a seed differ only by the rows added, not by a new draw.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = min(len(rows), max(1, math.floor(fraction * len(rows) + 0.5)))
        picked.append(rng.permutation(rows)[:k])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def augmentation(
    train_real: Any,
    test_real: Any,
    synthetic: Any,
    *,
    fractions: Sequence[float] = (0.05, 0.1, 0.2, 0.5),
    classifier: str = "mlp",
    seeds: Sequence[int] = (0, 1, 2),
    num_classes: int | None = None,
    mask: np.ndarray | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Accuracy on `test_real` of `classifier` trained on a fraction of `train_real`, alone and
    with the whole synthetic cohort added, for each fraction; and trained on synthetic data only.

    Each seed draws its own stratified subsample (`stratified_subsample`) and seeds the fits.
    Returns {"classifier", "seeds", "fractions", "n_real" (rows per fraction), "n_synthetic",
    "real_only": {"mean": [...], "std": [...], "values": [[per seed] per fraction]},
    "real_plus_synthetic": {same}, "synthetic_only": mean accuracy, "synthetic_only_std"}.
    """
    train, test, syn = as_labeled(train_real), as_labeled(test_real), as_labeled(synthetic)
    C = _num_classes([train, test, syn], num_classes)
    seeds = _check_seeds(seeds)
    kwargs = dict(fit_kwargs or {})
    real_only = np.zeros((len(fractions), len(seeds)))
    augmented = np.zeros((len(fractions), len(seeds)))
    n_real = [len(stratified_subsample(train.labels, f, 0)) for f in fractions]
    syn_only = []
    for j, seed in enumerate(seeds):
        for i, fraction in enumerate(fractions):
            rows = stratified_subsample(train.labels, fraction, seed)
            part = Labeled(train.features[rows], train.labels[rows])
            both = Labeled(np.concatenate([part.features, syn.features]),
                           np.concatenate([part.labels, syn.labels]))
            real_only[i, j] = _fit_accuracy(classifier, part, test, C, seed, mask, kwargs)
            augmented[i, j] = _fit_accuracy(classifier, both, test, C, seed, mask, kwargs)
            log.info("augmentation %s seed %d, %.0f %% real (%d rows): %.4f alone, %.4f with "
                     "synthetic", classifier, seed, 100 * fraction, len(rows), real_only[i, j],
                     augmented[i, j])
        syn_only.append(_fit_accuracy(classifier, syn, test, C, seed, mask, kwargs))

    def summary(acc: np.ndarray) -> dict[str, list]:
        stats = [_spread(row) for row in acc]
        return {"mean": [m for m, _ in stats], "std": [s for _, s in stats],
                "values": acc.tolist()}

    syn_mean, syn_std = _spread(syn_only)
    return {
        "classifier": classifier,
        "seeds": seeds,
        "fractions": [float(f) for f in fractions],
        "n_real": n_real,
        "n_synthetic": int(len(syn.labels)),
        "real_only": summary(real_only),
        "real_plus_synthetic": summary(augmented),
        "synthetic_only": syn_mean,
        "synthetic_only_std": syn_std,
    }
