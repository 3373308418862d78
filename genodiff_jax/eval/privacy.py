"""Privacy of a synthetic cohort against its training split (DESIGN 2).

- Identical matches: synthetic genomes equal, call for call, to some training genome. Rows are
  hashed (a set of the training rows' bytes), so the cost is O((N + M) S), never pairwise.
- Distance to closest record (DCR): each synthetic person's distance to the nearest training person,
  read against the baseline of real held-out (test) people to the same training set. A generator
  that only resamples the population should have DCRs like the baseline; many synthetic DCRs below
  the baseline's 5th percentile mean near-copies.
- Membership inference (distance attack): the attacker scores each real person by minus the distance
  to the nearest synthetic person (closer = more likely a member). AUC of training people (members)
  against test people (non-members); 0.5 = no leak, 1 = every member is given away.

Work on decoded calls (`metric="hamming"`, the default) or on features (`"euclidean"`).
"""

from __future__ import annotations

import numpy as np

from genodiff_jax.eval.distances import distribution_summary, nearest_neighbors, subsample


def _rows(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x)
    return np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=dtype)


def identical_matches(train: np.ndarray, synthetic: np.ndarray) -> dict:
    """Synthetic rows exactly equal to a training row.

    {"n_identical": synthetic rows with a copy in train, "share_identical": that / n_synthetic,
    "n_train_copied": distinct training rows copied, "n_synthetic": int}.
    """
    dtype = np.result_type(np.asarray(train).dtype, np.asarray(synthetic).dtype)
    tr, sy = _rows(train, dtype), _rows(synthetic, dtype)
    if tr.shape[1] != sy.shape[1]:
        raise ValueError(f"feature sizes differ: {tr.shape[1]} vs {sy.shape[1]}")
    seen = {row.tobytes() for row in tr}  # exact: the set compares bytes after hashing
    hits = [key for key in (row.tobytes() for row in sy) if key in seen]
    return {"n_identical": len(hits), "share_identical": len(hits) / max(len(sy), 1),
            "n_train_copied": len(set(hits)), "n_synthetic": int(len(sy))}


def distance_to_closest_record(
    train: np.ndarray,
    test: np.ndarray,
    synthetic: np.ndarray,
    *,
    metric: str = "hamming",
    block_size: int | None = None,
    normalize: bool = False,
) -> dict:
    """DCR of synthetic -> train against the test -> train baseline.

    {"synthetic": {"q05", "q50", "mean"}, "baseline": {"q05", "q50", "mean"},
    "share_below_baseline_q05": share of synthetic DCRs strictly below the baseline's 5th
    percentile (about 0.05 for an ideal generator), "share_zero": share of synthetic DCRs equal to
    0, "values": {"synthetic": [array M], "baseline": [array N_test]}}.
    """
    kw = {"metric": metric, "block_size": block_size, "normalize": normalize}
    d_syn, _ = nearest_neighbors(synthetic, train, **kw)
    d_base, _ = nearest_neighbors(test, train, **kw)
    base = distribution_summary(d_base)
    return {"synthetic": distribution_summary(d_syn), "baseline": base,
            "share_below_baseline_q05": float(np.mean(d_syn < base["q05"])),
            "share_zero": float(np.mean(d_syn == 0)),
            "values": {"synthetic": d_syn, "baseline": d_base}}


def membership_inference(
    train: np.ndarray,
    test: np.ndarray,
    synthetic: np.ndarray,
    *,
    metric: str = "hamming",
    max_n: int | None = None,
    seed: int = 0,
    block_size: int | None = None,
) -> dict:
    """Distance-based membership-inference AUC (members: train; non-members: test).

    `max_n` subsamples members and non-members (seeded) to bound the cost. Ties in the score count
    half, as in any AUC. {"auc": float, "n_members", "n_nonmembers": int}.
    """
    from sklearn.metrics import roc_auc_score  # only this metric needs scikit-learn

    if max_n is not None:
        rng = np.random.default_rng(seed)
        train, test = subsample(train, max_n, rng), subsample(test, max_n, rng)
    kw = {"metric": metric, "block_size": block_size}
    d_in, _ = nearest_neighbors(train, synthetic, **kw)
    d_out, _ = nearest_neighbors(test, synthetic, **kw)
    y = np.concatenate([np.ones(len(d_in)), np.zeros(len(d_out))])
    auc = roc_auc_score(y, -np.concatenate([d_in, d_out]))
    return {"auc": float(auc), "n_members": int(len(d_in)), "n_nonmembers": int(len(d_out))}


def privacy(
    train: np.ndarray,
    test: np.ndarray,
    synthetic: np.ndarray,
    *,
    metric: str = "hamming",
    max_n: int | None = None,
    seed: int = 0,
    block_size: int | None = None,
) -> dict:
    """{"identical": identical_matches, "dcr": distance_to_closest_record,
    "membership": membership_inference} (see each)."""
    return {
        "identical": identical_matches(train, synthetic),
        "dcr": distance_to_closest_record(train, test, synthetic, metric=metric,
                                          block_size=block_size),
        "membership": membership_inference(train, test, synthetic, metric=metric, max_n=max_n,
                                           seed=seed, block_size=block_size),
    }
