"""Nearest-neighbour adversarial accuracy (Yale et al. 2019; DESIGN 1.4).

For a real set T and a synthetic set S of equal size n:

    AA_truth = 1/n sum_i 1[d_TT(i) < d_TS(i)]   (real i: nearest other real strictly closer than
                                                  nearest synthetic)
    AA_syn   = 1/n sum_j 1[d_SS(j) < d_ST(j)]   (the same for synthetic j)
    AA       = (AA_truth + AA_syn) / 2           (0.5: the sets are indistinguishable)

Ties: "closer" is strict (`ties="strict"`, Yale's indicator 1[d_TS > d_TT]), so a tie counts as the
*other* set being closer. Under Hamming distance ties are common and strict ties bias AA below 0.5
by half the tie rate even for ideal data; `ties="half"` gives a tie 1/2 instead (unbiased, like an
AUC with ties). Either way a synthetic exact copy of real i (d_TS(i) = 0 < d_TT(i)) counts as the
synthetic being closer, and the copy's own nearest real is its original at 0, below any other
synthetic that is not a copy of the same person: copies drive both shares towards 0.

`nnaa` computes AA against the real test split and against the real training split; privacy loss =
AA(test) - AA(train). A model that memorises its training data has AA(train) far below AA(test), so
a large positive loss flags memorisation. Works on features (`metric="euclidean"`) or decoded calls
(`metric="hamming"`).

Sizes (Yale et al.'s equal-size argument): AA_truth and AA_syn each depend on how densely the two
sets cover the space (a synthetic set twice the real one's size is nearer to every real person),
so each comparison uses a real and a synthetic set of the same size. The two comparisons need not
share one size: for an ideal generator both read 0.5 at any size. The training side therefore uses
as many training people as there are synthetic ones (n_train = min(N_train, M, max_n)), not the
test split's size: a random training subset of the test split's size mostly misses the people a
memorising model copied (the `train_copies` reference read a privacy loss of 0.03-0.09 that way;
with every training person in the comparison it reads near 0.5). The synthetic subsamples are
nested (the test side's are n_test-row slices of the training side's), so the two AAs share most
of their synthetic people.

The price: for a generator whose people are told apart from real ones (AA above 0.5), AA grows
with n (real neighbours get closer as the real set grows), so comparing the test side at n_test
with the training side at n_train reads the privacy loss low, negative by about 0.1 at LCT's sizes
(251 vs 2253) for such a generator. `privacy_loss_at_test_size` gives the loss with both sides at
n_test beside it: a memorising model shows in `privacy_loss`, an n effect in the gap between them.
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


def mean_aa(results: list[dict]) -> dict:
    """The mean of several `adversarial_accuracy` dicts (sizes summed), with "repeats"."""
    out = {k: float(np.mean([r[k] for r in results])) for k in ("aa", "aa_truth", "aa_syn")}
    return {**out, "n_real": int(results[0]["n_real"]),
            "n_synthetic": int(sum(r["n_synthetic"] for r in results)), "repeats": len(results)}


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
    max_test_repeats: int = 16,
) -> dict:
    """AA against the real test and the real training split; privacy loss = AA(test) - AA(train).

    With `equal_size` (see the module docstring), each comparison pairs a real set and a synthetic
    set of one size, drawn seeded and without replacement: the training side n_train = min(N_train,
    M, max_n) of each, where M is the synthetic set's size; the test side n_test = min(N_test, M,
    max_n) test people against each of up to `max_test_repeats` disjoint synthetic subsets of that
    size, averaged (a small test split would otherwise let a few synthetic people decide it).

    Returns {"test": {...}, "train": {...}, "privacy_loss": float, "n": int (synthetic people on
    the training side), "n_test": int, "train_at_test_size": {...}, "privacy_loss_at_test_size":
    float}; "train" is an `adversarial_accuracy` dict, "test" their `mean_aa` over the repeats,
    "train_at_test_size" the same over disjoint n_test-sized chunks of the training side paired
    with the test side's synthetic subsets (Yale's n for both terms; it misses most copies).
    """
    kw = {"metric": metric, "block_size": block_size}
    if not equal_size:
        d_ss, _ = nearest_neighbors(synthetic, **kw)  # shared by both comparisons
        on_test, on_train = (_aa(real, synthetic, d_ss, ties, kw) for real in (test, train))
        return {"test": on_test, "train": on_train,
                "privacy_loss": on_test["aa"] - on_train["aa"], "n": int(len(synthetic)),
                "n_test": int(len(synthetic))}
    cap = max_n or max(len(train), len(test), len(synthetic))
    n_train = min(len(train), len(synthetic), cap)
    n_test = min(len(test), len(synthetic), cap)
    rng = np.random.default_rng(seed)
    synthetic = np.asarray(synthetic)[rng.permutation(len(synthetic))]
    train, test = subsample(train, n_train, rng), subsample(test, n_test, rng)
    on_train = adversarial_accuracy(train, synthetic[:n_train], ties=ties, **kw)
    repeats = max(1, min(max_test_repeats, len(synthetic) // n_test))
    chunks = [synthetic[i * n_test:(i + 1) * n_test] for i in range(repeats)]
    on_test = mean_aa([adversarial_accuracy(test, chunk, ties=ties, **kw) for chunk in chunks])
    # The same comparison with training people at the test split's size (disjoint chunks of the
    # training side): what the training side reads at the test side's n, copies mostly unseen.
    shuffled = train[rng.permutation(n_train)]  # the subsample keeps file order: often by class
    pairs = max(1, min(repeats, n_train // n_test))
    at_test_size = mean_aa([adversarial_accuracy(shuffled[i * n_test:(i + 1) * n_test],
                                                 chunks[i], ties=ties, **kw) for i in range(pairs)])
    return {"test": on_test, "train": on_train, "privacy_loss": on_test["aa"] - on_train["aa"],
            "n": n_train, "n_test": n_test, "train_at_test_size": at_test_size,
            "privacy_loss_at_test_size": on_test["aa"] - at_test_size["aa"]}
