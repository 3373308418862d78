"""Population-genetics fidelity of decoded genotypes (DESIGN 2): real vs synthetic calls [N, S].

Conventions (each function says what it returns; array-valued keys are marked [array] and are for
plots, every other value is a plain float/int/dict ready for JSON):

- Allele frequency p = mean dosage / 2 (ALT allele). Pearson r is NaN when either side is constant.
- Expected heterozygosity is 2p(1 - p) per variant without the small-sample correction, averaged
  over variants like the observed share of 1 calls.
- LD r^2 is the squared Pearson correlation of dosages. A pair involving a SNP that is monomorphic
  in a set has r^2 = 0 in that set (no LD can be seen). Windows are W consecutive SNPs that never
  cross a chromosome (`chroms`); pairs are each window's upper triangle. When real and synthetic
  r^2 are correlated, pairs that are undefined (a monomorphic SNP) in *both* sets are left out:
  they carry no information, yet a pair monomorphic in only one set is a real fidelity failure and
  stays in.
- Fst is Hudson's estimator as a ratio of averages over SNPs (Bhatia et al. 2013, eq. 10), with
  n = 2 x individuals haplotypes per sample:
  N = (p1 - p2)^2 - p1(1 - p1)/(n1 - 1) - p2(1 - p2)/(n2 - 1), D = p1(1 - p2) + p2(1 - p1),
  Fst = sum N / sum D. It can be slightly negative for identical sources; 0 is ideal here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.stats import wasserstein_distance

from genodiff_jax.eval.distances import distribution_summary, pairwise_distances, subsample

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _calls(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected genotype calls [N, S], got shape {x.shape}")
    return x


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r, NaN when either input is constant or there are fewer than 2 values."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt((xc @ xc) * (yc @ yc))
    return float(xc @ yc / denom) if denom > 0 else float("nan")


def allele_frequencies(calls: np.ndarray) -> np.ndarray:
    """ALT allele frequency per variant [S] (float64)."""
    return _calls(calls).mean(axis=0, dtype=np.float64) / 2.0


def allele_frequencies_by_population(
    calls: np.ndarray, labels: np.ndarray
) -> dict[str, np.ndarray]:
    """{str(label): AF [S]} for each label present."""
    calls, labels = _calls(calls), np.asarray(labels)
    return {str(c): allele_frequencies(calls[labels == c]) for c in np.unique(labels)}


def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
    r = pearson(a, b)
    return {"r": r, "r2": r * r, "mae": float(np.mean(np.abs(a - b)))}


def af_correlation(
    real: np.ndarray,
    synthetic: np.ndarray,
    real_labels: np.ndarray | None = None,
    synthetic_labels: np.ndarray | None = None,
) -> dict:
    """AF agreement. {"overall": {"r", "r2", "mae"}, "per_population": {pop: {"r", "r2", "mae"}},
    "per_population_mean_r"} (per population only for labels present in both sets; empty, and the
    mean NaN, without labels). The mean over classes of r is the label's fidelity: a cohort whose
    classes drift towards one another keeps the overall r and loses this one."""
    out = {"overall": _agreement(allele_frequencies(real), allele_frequencies(synthetic)),
           "per_population": {}}
    if real_labels is not None and synthetic_labels is not None:
        af_r = allele_frequencies_by_population(real, real_labels)
        af_s = allele_frequencies_by_population(synthetic, synthetic_labels)
        out["per_population"] = {c: _agreement(af_r[c], af_s[c]) for c in af_r if c in af_s}
    rs = [v["r"] for v in out["per_population"].values() if np.isfinite(v["r"])]
    out["per_population_mean_r"] = float(np.mean(rs)) if rs else float("nan")
    return out


def genotype_frequencies(calls: np.ndarray) -> np.ndarray:
    """Share of 0, 1 and 2 calls per variant [S, 3]."""
    calls = _calls(calls)
    return np.stack([(calls == g).mean(axis=0) for g in range(3)], axis=1)


def heterozygosity(calls: np.ndarray) -> dict:
    """{"observed": mean share of 1 calls, "expected": mean 2p(1 - p)}, both over variants."""
    p = allele_frequencies(calls)
    return {"observed": float(genotype_frequencies(calls)[:, 1].mean()),
            "expected": float(np.mean(2.0 * p * (1.0 - p)))}


def genotype_comparison(real: np.ndarray, synthetic: np.ndarray) -> dict:
    """{"real": heterozygosity, "synthetic": heterozygosity, "genotype_freq_r": {"0", "1", "2"},
    "genotype_freq_mae": float} (r and mean |difference| of per-variant genotype shares)."""
    g_r, g_s = genotype_frequencies(real), genotype_frequencies(synthetic)
    return {"real": heterozygosity(real), "synthetic": heterozygosity(synthetic),
            "genotype_freq_r": {str(g): pearson(g_r[:, g], g_s[:, g]) for g in range(3)},
            "genotype_freq_mae": float(np.mean(np.abs(g_r - g_s)))}


def r2_matrix(calls: np.ndarray) -> np.ndarray:
    """Squared Pearson correlation of dosages between all SNP pairs [S, S]; 0 for a monomorphic SNP
    (its diagonal entry too)."""
    x = _calls(calls).astype(np.float64)
    x -= x.mean(axis=0)
    cov = x.T @ x
    sd = np.sqrt(np.diag(cov))
    poly = sd > 0
    r = np.zeros_like(cov)
    r[np.ix_(poly, poly)] = cov[np.ix_(poly, poly)] / np.outer(sd[poly], sd[poly])
    return np.minimum(r * r, 1.0)  # rounding can put a perfect correlation a hair above 1


def windows(n_snps: int, window: int, chroms: np.ndarray | None = None) -> Iterator[slice]:
    """Consecutive blocks of `window` SNPs that restart at every chromosome change."""
    if window < 2:
        raise ValueError(f"LD window must hold at least 2 SNPs, got {window}")
    bounds = [0, n_snps]
    if chroms is not None:
        chroms = np.asarray(chroms)
        bounds = [0, *(np.flatnonzero(chroms[1:] != chroms[:-1]) + 1).tolist(), n_snps]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        for start in range(lo, hi, window):
            yield slice(start, min(start + window, hi))


def _window_pairs(real, synthetic, window, chroms, positions=None):
    """Per window, over its upper-triangle pairs: (r2 real, r2 synthetic, pair polymorphic in real,
    pair polymorphic in synthetic, bp distance or None)."""
    real, synthetic = _calls(real), _calls(synthetic)
    if real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"variant counts differ: {real.shape[1]} vs {synthetic.shape[1]}")
    for sl in windows(real.shape[1], window, chroms):
        iu = np.triu_indices(sl.stop - sl.start, k=1)
        if not iu[0].size:
            continue
        poly_r = real[:, sl].min(axis=0) != real[:, sl].max(axis=0)
        poly_s = synthetic[:, sl].min(axis=0) != synthetic[:, sl].max(axis=0)
        dist = None
        if positions is not None:
            pos = np.asarray(positions[sl], np.int64)
            dist = np.abs(pos[iu[1]] - pos[iu[0]])
        yield (r2_matrix(real[:, sl])[iu], r2_matrix(synthetic[:, sl])[iu],
               poly_r[iu[0]] & poly_r[iu[1]], poly_s[iu[0]] & poly_s[iu[1]], dist)


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if v.size else float("nan")


def ld_correlation(
    real: np.ndarray, synthetic: np.ndarray, *, window: int = 100, chroms: np.ndarray | None = None
) -> dict:
    """Real vs synthetic r^2 over the windows' upper triangles (see module docstring).

    {"r": Pearson r of the pooled r^2 values, "mae": mean |difference|, "mean_r2_real",
    "mean_r2_synthetic": float, "n_pairs": int, "window": int}.
    """
    parts = [(r, s, pr | ps) for r, s, pr, ps, _ in _window_pairs(real, synthetic, window, chroms)]
    if parts:
        r2_r, r2_s, keep = (np.concatenate(p) for p in zip(*parts))
        r2_r, r2_s = r2_r[keep], r2_s[keep]
    else:
        r2_r = r2_s = np.zeros(0)
    return {"r": pearson(r2_r, r2_s), "mae": _mean(np.abs(r2_r - r2_s)),
            "mean_r2_real": _mean(r2_r), "mean_r2_synthetic": _mean(r2_s),
            "n_pairs": int(r2_r.size), "window": int(window)}


def ld_correlation_at_size(
    real: np.ndarray, synthetic: np.ndarray, n: int, *, seeds=(0,), window: int = 100,
    chroms: np.ndarray | None = None
) -> dict:
    """`ld_correlation` of n people of `synthetic` drawn without replacement, one draw a seed:
    cohorts compared at one size. r^2 from fewer people is noisier, so the same generator scores a
    higher LD r at 2504 people than at the 251 a held-out split has; at the held-out count a
    generator's LD r reads against real_test's like for like.

    {"r": mean over draws, "std": their std, "n": people a draw, "draws": int}."""
    n = min(int(n), len(synthetic))
    seeds = tuple(seeds) if n < len(synthetic) else tuple(seeds)[:1]  # one draw is everyone
    rs = [ld_correlation(real, subsample(synthetic, n, np.random.default_rng(seed)),
                         window=window, chroms=chroms)["r"] for seed in seeds]
    return {"r": float(np.mean(rs)), "std": float(np.std(rs)), "n": n, "draws": len(rs)}


def ld_decay(
    real: np.ndarray,
    synthetic: np.ndarray,
    positions: np.ndarray,
    *,
    window: int = 100,
    bins: int | np.ndarray = 20,
    chroms: np.ndarray | None = None,
) -> dict:
    """Mean r^2 by physical distance (bp) over the windows' pairs, for real and synthetic.

    `bins`: a count (equal-width bins from 0 to the largest pair distance) or explicit edges (pairs
    outside them are dropped). All pairs count, a monomorphic SNP's pairs as r^2 = 0.
    {"bin_edges" [array B+1], "bin_centers" [array B], "real" [array B], "synthetic" [array B]
    (NaN in empty bins), "n_pairs" [array B], "mae": mean |real - synthetic| over non-empty bins}.
    """
    parts = [(r, s, d) for r, s, _, _, d in
             _window_pairs(real, synthetic, window, chroms, np.asarray(positions))]
    r2_r, r2_s, dist = ((np.concatenate(p) for p in zip(*parts)) if parts
                        else (np.zeros(0), np.zeros(0), np.zeros(0, np.int64)))
    if np.ndim(bins) == 0:
        edges = np.linspace(0.0, float(dist.max()) if dist.size else 1.0, int(bins) + 1)
    else:
        edges = np.asarray(bins, np.float64)
    nb = len(edges) - 1
    inside = (dist >= edges[0]) & (dist <= edges[-1])
    idx = np.clip(np.searchsorted(edges, dist[inside], side="right") - 1, 0, nb - 1)
    count = np.bincount(idx, minlength=nb).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_r = np.bincount(idx, r2_r[inside], minlength=nb) / count
        mean_s = np.bincount(idx, r2_s[inside], minlength=nb) / count
    filled = count > 0
    mae = float(np.mean(np.abs(mean_r - mean_s)[filled])) if filled.any() else float("nan")
    return {"bin_edges": edges, "bin_centers": 0.5 * (edges[:-1] + edges[1:]), "real": mean_r,
            "synthetic": mean_s, "n_pairs": count.astype(np.int64),
            "mae": mae}


def pca_comparison(
    real: np.ndarray, synthetic: np.ndarray, *, n_components: int = 10, seed: int = 0
) -> dict:
    """PCA fitted on the real dosages (mean-centred), synthetic projected onto it.

    {"explained_variance_ratio": [k floats], "wasserstein": [k floats] per PC,
    "wasserstein_sd": [k floats] (the same in units of the real PC's standard deviation),
    "wasserstein_mean": float, "real_coords" [array N, k], "synthetic_coords" [array M, k]}.
    """
    from sklearn.decomposition import PCA  # only this metric needs scikit-learn

    real, synthetic = _calls(real).astype(np.float32), _calls(synthetic).astype(np.float32)
    k = int(min(n_components, real.shape[0] - 1, real.shape[1]))
    pca = PCA(n_components=k, random_state=seed).fit(real)
    z_r, z_s = pca.transform(real), pca.transform(synthetic)
    w = [float(wasserstein_distance(z_r[:, c], z_s[:, c])) for c in range(k)]
    sd = z_r.std(axis=0)
    return {"explained_variance_ratio": pca.explained_variance_ratio_.tolist(), "wasserstein": w,
            "wasserstein_sd": [wi / s if s > 0 else float("nan") for wi, s in zip(w, sd)],
            "wasserstein_mean": float(np.mean(w)), "real_coords": z_r, "synthetic_coords": z_s}


def hudson_fst(a: np.ndarray, b: np.ndarray) -> float:
    """Hudson's Fst between two samples of calls, ratio of averages (module docstring)."""
    a, b = _calls(a), _calls(b)
    n1, n2 = 2 * a.shape[0], 2 * b.shape[0]
    if min(n1, n2) < 2:
        raise ValueError("Fst needs at least one individual in each sample")
    p1, p2 = allele_frequencies(a), allele_frequencies(b)
    num = (p1 - p2) ** 2 - p1 * (1 - p1) / (n1 - 1) - p2 * (1 - p2) / (n2 - 1)
    den = p1 * (1 - p2) + p2 * (1 - p1)
    return float(num.sum() / den.sum()) if den.sum() > 0 else float("nan")


def fst(
    real: np.ndarray,
    synthetic: np.ndarray,
    real_labels: np.ndarray | None = None,
    synthetic_labels: np.ndarray | None = None,
) -> dict:
    """Hudson Fst real vs synthetic: {"overall": float, "per_population": {pop: float}} (per
    population only for labels present in both sets)."""
    out = {"overall": hudson_fst(real, synthetic), "per_population": {}}
    if real_labels is not None and synthetic_labels is not None:
        real_labels, synthetic_labels = np.asarray(real_labels), np.asarray(synthetic_labels)
        common = np.intersect1d(real_labels, synthetic_labels)
        out["per_population"] = {str(c): hudson_fst(real[real_labels == c],
                                                     synthetic[synthetic_labels == c])
                                 for c in common}
    return out


def pairwise_distance_distributions(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    n: int = 300,
    seed: int = 0,
    normalize: bool = False,
) -> dict:
    """Hamming distances within real, within synthetic and real-to-synthetic on seeded subsamples of
    at most n people each (counts of differing calls; shares with `normalize`).

    {"within_real", "within_synthetic", "real_to_synthetic": {"mean", "q05", "q25", "q50", "q75",
    "q95"}, "wasserstein_within": W1(within real, within synthetic), "wasserstein_cross": W1(within
    real, real-to-synthetic), "n_real", "n_synthetic": int, "values": {same three keys: [array]}}.
    """
    rng = np.random.default_rng(seed)
    r, s = (subsample(_calls(x), n, rng) for x in (real, synthetic))
    if min(len(r), len(s)) < 2:
        raise ValueError("pairwise distances need at least 2 people in each set")
    kw = {"metric": "hamming", "normalize": normalize}
    values = {"within_real": pairwise_distances(r, **kw)[np.triu_indices(len(r), k=1)],
              "within_synthetic": pairwise_distances(s, **kw)[np.triu_indices(len(s), k=1)],
              "real_to_synthetic": pairwise_distances(r, s, **kw).ravel()}
    return {**{k: distribution_summary(v, QUANTILES) for k, v in values.items()},
            "wasserstein_within": float(wasserstein_distance(values["within_real"],
                                                             values["within_synthetic"])),
            "wasserstein_cross": float(wasserstein_distance(values["within_real"],
                                                            values["real_to_synthetic"])),
            "n_real": len(r), "n_synthetic": len(s), "values": values}


def fidelity(
    real: np.ndarray,
    synthetic: np.ndarray,
    positions: np.ndarray,
    *,
    real_labels: np.ndarray | None = None,
    synthetic_labels: np.ndarray | None = None,
    chroms: np.ndarray | None = None,
    window: int = 100,
    n_components: int = 10,
    n_pairwise: int = 300,
    seed: int = 0,
) -> dict:
    """Every metric above: {"af", "genotypes", "ld", "ld_decay", "pca", "fst", "pairwise"}, each the
    dict of its function (af_correlation, genotype_comparison, ld_correlation, ld_decay,
    pca_comparison, fst, pairwise_distance_distributions)."""
    return {
        "af": af_correlation(real, synthetic, real_labels, synthetic_labels),
        "genotypes": genotype_comparison(real, synthetic),
        "ld": ld_correlation(real, synthetic, window=window, chroms=chroms),
        "ld_decay": ld_decay(real, synthetic, positions, window=window, chroms=chroms),
        "pca": pca_comparison(real, synthetic, n_components=n_components, seed=seed),
        "fst": fst(real, synthetic, real_labels, synthetic_labels),
        "pairwise": pairwise_distance_distributions(real, synthetic, n=n_pairwise, seed=seed),
    }


def af_class_matrix(
    real: np.ndarray,
    synthetic: np.ndarray,
    real_labels: np.ndarray,
    synthetic_labels: np.ndarray,
    num_classes: int,
) -> dict:
    """Does each synthetic class carry its label? r[i, j] = Pearson r between the allele
    frequencies of synthetic class i and of real class j (NaN where a class is absent on either
    side or its frequencies are constant).

    {"r" [K, K] (float64), "best_match" [K] (the real class with the highest r per synthetic
    class, -1 where the row is all NaN), "own_class": how many present synthetic classes match
    their own real class best, "n_classes": present synthetic classes, "diagonal_mean": mean of
    the finite diagonal (the same number as af_correlation's per_population_mean_r),
    "off_diagonal_best_mean": mean over rows of the best r with another real class}."""
    real, synthetic = _calls(real), _calls(synthetic)
    real_labels, synthetic_labels = np.asarray(real_labels), np.asarray(synthetic_labels)

    def class_af(calls, labels):
        af = np.full((num_classes, calls.shape[1]), np.nan)
        for c in range(num_classes):
            if (labels == c).any():
                af[c] = allele_frequencies(calls[labels == c])
        return af

    af_r, af_s = class_af(real, real_labels), class_af(synthetic, synthetic_labels)
    r = np.array([[pearson(af_s[i], af_r[j]) if np.isfinite(af_s[i, 0]) and
                   np.isfinite(af_r[j, 0]) else np.nan for j in range(num_classes)]
                  for i in range(num_classes)], np.float64).reshape(num_classes, num_classes)
    present = np.isfinite(r).any(axis=1)
    best = np.where(present, np.argmax(np.where(np.isfinite(r), r, -np.inf), axis=1), -1)
    diagonal = np.diag(r)[np.isfinite(np.diag(r))]
    others = np.where(np.eye(num_classes, dtype=bool) | ~np.isfinite(r), -np.inf, r).max(axis=1)
    others = others[np.isfinite(others)]
    return {"r": r, "best_match": best.astype(np.int64),
            "own_class": int((best[present] == np.flatnonzero(present)).sum()),
            "n_classes": int(present.sum()),
            "diagonal_mean": float(diagonal.mean()) if diagonal.size else float("nan"),
            "off_diagonal_best_mean": float(others.mean()) if others.size else float("nan")}
