"""Nearest-neighbour adversarial accuracy (Yale et al. 2019; DESIGN 1.4).

For a real set T and a synthetic set S of equal size n:

    AA_truth = 1/n sum_i 1[d_TT(i) < d_TS(i)]   (real i: nearest other real strictly closer than
                                                  nearest synthetic)
    AA_syn   = 1/n sum_j 1[d_SS(j) < d_ST(j)]   (the same for synthetic j)
    AA       = (AA_truth + AA_syn) / 2           (0.5: the sets are indistinguishable)

Ties: "closer" is strict (`ties="strict"`, Yale's indicator 1[d_TS > d_TT]), so a tie counts as the
*other* set being closer. A synthetic exact copy of real i (d_TS(i) = 0) therefore always counts as
the synthetic being closer, and two synthetic copies of one genome (d_SS = d_ST = 0) count as the
real being closer: copies drive both shares to 0. Under Hamming distance ties are common and strict
ties bias AA below 0.5 by half the tie rate even for ideal data; `ties="half"` gives a tie 1/2
instead (unbiased, like an AUC with ties).

`nnaa` computes AA against the real test split and against the real training split; privacy loss =
AA(test) - AA(train). A model that memorises its training data has AA(train) far below AA(test), so
a large positive loss flags memorisation. Works on features (`metric="euclidean"`) or decoded calls
(`metric="hamming"`).
"""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.distances import mutual_nearest_neighbors, nearest_neighbors, subsample

TIE_RULES = {"strict": 0.0, "half": 0.5}


def _closer_share(d_own: np.ndarray, d_other: np.ndarray, ties: str) -> float:
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; known: {sorted(TIE_RULES)}")
    return float(np.mean((d_own < d_other) + TIE_RULES[ties] * (d_own == d_other)))


def adversarial_accuracy(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    metric: str = "euclidean",
    ties: str = "strict",
    block_size: int | None = None,
) -> dict:
    """AA of `real` [n, ...] vs `synthetic` [m, ...], used as given (see `nnaa` for equal sizes).

    Returns {"aa", "aa_truth", "aa_syn": float, "n_real", "n_synthetic": int}.
    """
    kw = {"metric": metric, "block_size": block_size}
    return _aa(real, synthetic, nearest_neighbors(synthetic, **kw)[0], ties, kw)


def _aa(real: np.ndarray, synthetic: np.ndarray, d_ss: np.ndarray, ties: str, kw: dict) -> dict:
    d_tt, _ = nearest_neighbors(real, **kw)
    (d_ts, _), (d_st, _) = mutual_nearest_neighbors(real, synthetic, **kw)
    aa_truth = _closer_share(d_tt, d_ts, ties)
    aa_syn = _closer_share(d_ss, d_st, ties)
    return {"aa": 0.5 * (aa_truth + aa_syn), "aa_truth": aa_truth, "aa_syn": aa_syn,
            "n_real": int(len(real)), "n_synthetic": int(len(synthetic))}


def nnaa(
    train: np.ndarray,
    test: np.ndarray,
    synthetic: np.ndarray,
    *,
    metric: str = "euclidean",
    ties: str = "strict",
    equal_size: bool = True,
    max_n: int | None = None,
    seed: int = 0,
    block_size: int | None = None,
) -> dict:
    """AA against the real test and the real training split; privacy loss = AA(test) - AA(train).

    With `equal_size` (Yale et al.), all three sets are subsampled (seeded, without replacement) to
    n = min(len(train), len(test), len(synthetic), max_n): AA depends on how densely each set
    covers the space, so the two comparisons must see the same n. One synthetic subsample serves
    both, so their difference is not inflated by subsampling noise. `max_n` applies only here.

    Returns {"test": {...}, "train": {...}, "privacy_loss": float, "n": int}; "test" and "train"
    are `adversarial_accuracy` dicts.
    """
    if equal_size:
        n = min(len(train), len(test), len(synthetic), max_n or len(train))
        rng = np.random.default_rng(seed)
        train, test, synthetic = (subsample(x, n, rng) for x in (train, test, synthetic))
    kw = {"metric": metric, "block_size": block_size}
    d_ss, _ = nearest_neighbors(synthetic, **kw)  # shared by both comparisons
    on_test = _aa(test, synthetic, d_ss, ties, kw)
    on_train = _aa(train, synthetic, d_ss, ties, kw)
    return {"test": on_test, "train": on_train, "privacy_loss": on_test["aa"] - on_train["aa"],
            "n": int(len(synthetic))}
