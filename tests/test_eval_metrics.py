"""Evaluation metrics: exact chunked distances, NNAA, pop-gen fidelity, privacy, references
(mosaic included), longest identical runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from genodiff_jax.eval import distances, nnaa, popgen, privacy, references, segments

# ---------------------------------------------------------------------------------------------
# Small data generators


def _mixture(n: int, rng: np.random.Generator) -> np.ndarray:
    """A 3-component Gaussian mixture in 5 dimensions."""
    means = np.array([[0, 0, 0, 0, 0], [4, 0, 0, 0, 0], [0, 4, 0, 0, 0]], np.float64)
    return means[rng.integers(0, 3, n)] + rng.normal(size=(n, 5))


def _hwe(n: int, p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Independent sites under Hardy-Weinberg with allele frequencies p."""
    return rng.binomial(2, p, size=(n, p.size)).astype(np.int8)


_HWE_P = np.random.default_rng(99).uniform(0.05, 0.5, 300)

# Haplotype blocks: 8 blocks of 10 SNPs, 3 founder haplotypes per block, so SNPs in a block are in
# strong LD. Two populations weight the founders differently, so per-population AFs differ.
_FOUNDERS = np.random.default_rng(5).integers(0, 2, (8, 3, 10))
_FOUNDER_P = np.array([[0.6, 0.3, 0.1], [0.1, 0.3, 0.6]])


def _block_haplotypes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Haplotypes int8 [n, 2, 80] and labels [n] of the two block populations."""
    labels = np.repeat([0, 1], n // 2)
    n_blocks = _FOUNDERS.shape[0]
    picks = np.stack([rng.choice(3, size=(2, n_blocks), p=_FOUNDER_P[c]) for c in labels])
    haps = _FOUNDERS[np.arange(n_blocks), picks]  # [n, 2, blocks, 10]
    return haps.reshape(n, 2, -1).astype(np.int8), labels


def _blocks(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    haps, labels = _block_haplotypes(n, rng)
    return haps.sum(axis=1, dtype=np.int8), labels


# ---------------------------------------------------------------------------------------------
# Distances


@pytest.mark.parametrize("metric", ["euclidean", "hamming"])
def test_chunked_nearest_neighbors_equal_cdist(metric):
    rng = np.random.default_rng(0)
    if metric == "euclidean":
        a, b = rng.normal(size=(50, 13)), rng.normal(size=(40, 13))
        ref = cdist(a, b)
    else:
        a = rng.integers(0, 3, (50, 30)).astype(np.int8)
        b = rng.integers(0, 3, (40, 30)).astype(np.int8)
        ref = cdist(a, b, "hamming") * a.shape[1]  # scipy gives the share: count = share * S
    d, idx = distances.nearest_neighbors(a, b, metric=metric, block_size=7)
    np.testing.assert_allclose(d, ref.min(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(idx, ref.argmin(axis=1))
    (d_ab, i_ab), (d_ba, i_ba) = distances.mutual_nearest_neighbors(a, b, metric=metric,
                                                                    block_size=7)
    np.testing.assert_allclose(d_ab, ref.min(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d_ba, ref.min(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(i_ba, ref.argmin(axis=0))
    np.testing.assert_allclose(distances.pairwise_distances(a, b, metric=metric), ref, atol=1e-9)

    # Self-exclusion (b = a): the diagonal is skipped, whatever block boundaries cut it.
    ref_self = cdist(a, a) if metric == "euclidean" else cdist(a, a, "hamming") * a.shape[1]
    np.fill_diagonal(ref_self, np.inf)
    d, idx = distances.nearest_neighbors(a, metric=metric, block_size=7)
    np.testing.assert_allclose(d, ref_self.min(axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(idx, ref_self.argmin(axis=1))
    assert np.all(idx != np.arange(len(a)))


def test_hamming_normalize_and_exact_copies():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 3, (20, 25)).astype(np.int8)
    d, _ = distances.nearest_neighbors(a, a[::-1].copy(), metric="hamming", normalize=True)
    np.testing.assert_array_equal(d, 0.0)  # every row has its copy
    b = rng.integers(0, 3, (15, 25)).astype(np.int8)
    d, _ = distances.nearest_neighbors(a, b, metric="hamming", normalize=True, block_size=4)
    np.testing.assert_allclose(d, cdist(a, b, "hamming").min(axis=1))
    # Euclidean: the winning pair is recomputed directly, so an exact copy is exactly 0 (the
    # ||a||^2 + ||b||^2 - 2ab expansion alone leaves ~1e-8).
    x = rng.normal(size=(30, 200)) * 100
    d, idx = distances.nearest_neighbors(x, x[::-1].copy(), block_size=8)
    np.testing.assert_array_equal(d, 0.0)
    np.testing.assert_array_equal(idx, np.arange(30)[::-1])


def test_tiles_stay_within_block_size(monkeypatch):
    shapes = []
    metric = distances.METRICS["hamming"]

    def tile(a, b):
        out = metric.tile(a, b)
        shapes.append(out.shape)
        return out

    monkeypatch.setitem(distances.METRICS, "hamming", dataclasses.replace(metric, tile=tile))
    rng = np.random.default_rng(2)
    a = rng.integers(0, 3, (50, 30)).astype(np.int8)
    b = rng.integers(0, 3, (40, 30)).astype(np.int8)
    d, _ = distances.nearest_neighbors(a, b, metric="hamming", block_size=7)
    np.testing.assert_allclose(d, (cdist(a, b, "hamming") * 30).min(axis=1))
    assert max(max(s) for s in shapes) == 7  # never more than a 7 x 7 tile at once
    assert len(shapes) == 8 * 6  # ceil(50/7) x ceil(40/7) tiles cover the whole matrix


def test_hamming_rejects_non_calls():
    with pytest.raises(ValueError, match="0, 1, 2"):
        distances.nearest_neighbors(np.full((3, 4), 3, np.int8), metric="hamming")
    with pytest.raises(ValueError, match="0, 1, 2"):  # dosages, not calls
        distances.nearest_neighbors(np.full((3, 4), 0.5), metric="hamming")


# ---------------------------------------------------------------------------------------------
# NNAA


def test_nnaa_synthetic_train_copies_leaks():
    rng = np.random.default_rng(3)
    train, test = _mixture(200, rng), _mixture(200, rng)
    synthetic = train[rng.permutation(200)]  # every training person copied exactly once
    out = nnaa.nnaa(train, test, synthetic)
    # Against train: each real person's nearest synthetic is its copy at distance 0 (< any other
    # real), so AA_truth(train) = 0; each synthetic's nearest real is its original at 0, while its
    # nearest other synthetic is farther, so AA_syn(train) = 0 too: AA(train) = 0.
    assert out["train"]["aa_truth"] == 0.0 and out["train"]["aa_syn"] == 0.0
    # Against test: the synthetic set is just another real sample of the same size, so AA(test) is
    # near 0.5 and privacy loss = AA(test) - AA(train) is large and positive.
    assert abs(out["test"]["aa"] - 0.5) < 0.1
    assert out["privacy_loss"] > 0.35
    assert out["n"] == 200


def test_nnaa_same_distribution_near_half():
    rng = np.random.default_rng(4)
    train, test, synthetic = _mixture(500, rng), _mixture(500, rng), _mixture(500, rng)
    out = nnaa.nnaa(train, test, synthetic)
    for split in ("train", "test"):
        assert abs(out[split]["aa"] - 0.5) < 0.05, out[split]
    assert abs(out["privacy_loss"]) < 0.07


def test_nnaa_hamming_ties_and_equal_sizes():
    rng = np.random.default_rng(5)
    train, test, synthetic = _hwe(600, _HWE_P, rng), _hwe(400, _HWE_P, rng), _hwe(500, _HWE_P, rng)
    half = nnaa.nnaa(train, test, synthetic, metric="hamming", ties="half")
    strict = nnaa.nnaa(train, test, synthetic, metric="hamming", ties="strict")
    # Each comparison pairs equal sizes: the training side as many as there are synthetic people.
    assert half["n"] == half["train"]["n_real"] == half["train"]["n_synthetic"] == 500
    assert half["n_test"] == half["test"]["n_real"] == half["test"]["n_synthetic"] == 400
    for split in ("train", "test"):
        assert abs(half[split]["aa"] - 0.5) < 0.05, half[split]
        # Integer distances tie often; a strict "closer" counts ties against, so it sits lower.
        assert strict[split]["aa"] < half[split]["aa"]
    with pytest.raises(ValueError, match="tie rule"):
        nnaa.adversarial_accuracy(train[:10], synthetic[:10], metric="hamming", ties="coin")


def test_privacy_loss_sees_copies_whatever_the_test_split_size():
    """A copier of the training split reads a privacy loss near 0.5 with a test split a tenth of
    the training split's size (a random training subset of the test split's size read ~0.1)."""
    rng = np.random.default_rng(8)
    train, test = _hwe(600, _HWE_P, rng), _hwe(60, _HWE_P, rng)
    copies, _ = references.train_copies(train, None, 600, rng)  # each training person once
    out = nnaa.nnaa(train, test, copies, metric="hamming", ties="half")
    assert out["n"] == 600 and out["n_test"] == 60
    assert out["train"]["aa"] == 0.0 and out["privacy_loss"] > 0.4, out
    fresh = nnaa.nnaa(train, test, _hwe(600, _HWE_P, rng), metric="hamming", ties="half")
    assert abs(fresh["privacy_loss"]) < 0.1, fresh  # a generator of new people: about 0
    assert abs(fresh["privacy_loss_at_test_size"]) < 0.1, fresh
    # With both sides at the test split's size, the training side holds a tenth of the copied
    # people: the old reading, which misses the copier.
    assert out["privacy_loss_at_test_size"] < out["privacy_loss"] - 0.2, out


def test_copies_on_calls_counted_as_identical_matches():
    rng = np.random.default_rng(6)
    train, test = _hwe(200, _HWE_P, rng), _hwe(200, _HWE_P, rng)
    copied = rng.choice(200, 50, replace=False)
    synthetic = np.concatenate([train[copied], _hwe(150, _HWE_P, rng)])
    ident = privacy.identical_matches(train, synthetic)
    assert ident == {"n_identical": 50, "share_identical": 0.25, "n_train_copied": 50,
                     "n_synthetic": 200}
    out = nnaa.nnaa(train, test, synthetic, metric="hamming", ties="half")
    # The 50 copied people see their copy at 0: their AA_truth indicator is 0, which pulls
    # AA_truth(train) a quarter below its ~0.5 level, and AA(train) below AA(test).
    assert out["train"]["aa_truth"] < 0.45
    assert out["privacy_loss"] > 0.05


# ---------------------------------------------------------------------------------------------
# Pop-gen fidelity against hand-computed values

REAL = np.array([[0, 1, 2, 0],
                 [1, 1, 0, 0],
                 [2, 0, 1, 0],
                 [0, 2, 2, 0],
                 [1, 1, 1, 0],
                 [2, 1, 0, 0]], np.int8)
SYN = np.array([[2, 1, 0, 0],
                [2, 0, 0, 1],
                [1, 1, 0, 0],
                [1, 0, 1, 1]], np.int8)


def test_allele_and_genotype_frequencies_by_hand():
    # Column sums 6, 6, 6, 0 over 12 alleles.
    np.testing.assert_allclose(popgen.allele_frequencies(REAL), [0.5, 0.5, 0.5, 0.0])
    by_pop = popgen.allele_frequencies_by_population(REAL, np.array(["a"] * 3 + ["b"] * 3))
    # Pop a = rows 0-2: column 1 holds 1 + 1 + 0 = 2 of 6 alleles; pop b: 2 + 1 + 1 = 4 of 6.
    np.testing.assert_allclose(by_pop["a"], [0.5, 1 / 3, 0.5, 0.0])
    np.testing.assert_allclose(by_pop["b"], [0.5, 2 / 3, 0.5, 0.0])
    np.testing.assert_allclose(popgen.genotype_frequencies(REAL), [
        [2 / 6, 2 / 6, 2 / 6], [1 / 6, 4 / 6, 1 / 6], [2 / 6, 2 / 6, 2 / 6], [1, 0, 0]])
    het = popgen.heterozygosity(REAL)
    assert het["observed"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 3 + 0) / 4)
    assert het["expected"] == pytest.approx((0.5 + 0.5 + 0.5 + 0) / 4)  # 2p(1-p) = 0.5 at p = 0.5
    # SYN allele frequencies: 6/8, 2/8, 1/8, 2/8.
    af = popgen.af_correlation(REAL, SYN)["overall"]
    expected_r = np.corrcoef([0.5, 0.5, 0.5, 0.0], [0.75, 0.25, 0.125, 0.25])[0, 1]
    assert af["r"] == pytest.approx(expected_r) and af["r2"] == pytest.approx(expected_r ** 2)
    assert af["mae"] == pytest.approx((0.25 + 0.25 + 0.375 + 0.25) / 4)


def test_ld_r2_by_hand():
    # REAL, centred columns: c0 = [-1, 0, 1, -1, 0, 1] (sum sq 4), c1 = [0, 0, -1, 1, 0, 0] (2),
    # c2 = [1, -1, 0, 1, 0, -1] (4); c3 is monomorphic -> r^2 = 0.
    # c0.c1 = -2 -> r^2 = 4 / 8; c0.c2 = -3 -> 9 / 16; c1.c2 = 1 -> 1 / 8.
    real_pairs = np.array([1 / 2, 9 / 16, 0, 1 / 8, 0, 0])  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    iu = np.triu_indices(4, k=1)
    np.testing.assert_allclose(popgen.r2_matrix(REAL)[iu], real_pairs)
    np.testing.assert_allclose(np.diag(popgen.r2_matrix(REAL)), [1, 1, 1, 0])
    # SYN, centred: s0 = [.5, .5, -.5, -.5], s1 = [.5, -.5, .5, -.5], s2 = [-.25, -.25, -.25, .75],
    # s3 = [-.5, .5, -.5, .5]; sum sq 1, 1, .75, 1. s0.s1 = 0, s0.s2 = -.5 -> .25/.75,
    # s0.s3 = 0, s1.s2 = -.5 -> 1/3, s1.s3 = -1 -> 1, s2.s3 = .5 -> 1/3.
    syn_pairs = np.array([0, 1 / 3, 0, 1 / 3, 1, 1 / 3])
    np.testing.assert_allclose(popgen.r2_matrix(SYN)[iu], syn_pairs)
    # Column 3 is monomorphic in REAL but not in SYN, so its pairs stay in (6 pairs).
    ld = popgen.ld_correlation(REAL, SYN, window=4)
    assert ld["n_pairs"] == 6
    assert ld["r"] == pytest.approx(np.corrcoef(real_pairs, syn_pairs)[0, 1])
    assert ld["mean_r2_real"] == pytest.approx(real_pairs.mean())
    # Against itself, the pairs with column 3 are undefined on both sides and are left out.
    same = popgen.ld_correlation(REAL, REAL, window=4)
    assert same["n_pairs"] == 3 and same["r"] == pytest.approx(1.0) and same["mae"] == 0.0
    # Windows of 2 SNPs: pairs (0,1) and (2,3) only.
    assert popgen.ld_correlation(REAL, SYN, window=2)["n_pairs"] == 2
    # Windows never cross a chromosome: chromosomes {0,1} and {2,3} leave the same two pairs.
    assert popgen.ld_correlation(REAL, SYN, window=4, chroms=np.array([1, 1, 2, 2]))["n_pairs"] == 2


def test_ld_at_one_size_reads_the_noise_of_fewer_people():
    rng = np.random.default_rng(11)
    real, _ = _blocks(400, rng)
    # Against itself at its full size r is 1 (n above the cohort's: everyone, one draw) ...
    full = popgen.ld_correlation_at_size(real, real, 1000, seeds=(0, 1, 2), window=10)
    assert full == {"r": pytest.approx(1.0), "std": 0.0, "n": 400, "draws": 1}
    # ... and 40 of its people estimate r^2 with noise: each draw is `ld_correlation` of them.
    few = popgen.ld_correlation_at_size(real, real, 40, seeds=(0, 1, 2), window=10)
    draws = [popgen.ld_correlation(real, distances.subsample(real, 40, np.random.default_rng(s)),
                                   window=10)["r"] for s in (0, 1, 2)]
    assert few == {"r": pytest.approx(np.mean(draws)), "std": pytest.approx(np.std(draws)),
                   "n": 40, "draws": 3}
    assert few["std"] > 0
    # Fewer people, noisier r^2, lower r (measured: 0.964 / 0.983 / 0.995 at 20 / 40 / 100).
    r = [popgen.ld_correlation_at_size(real, real, n, seeds=(0, 1, 2), window=10)["r"]
         for n in (20, 40, 100)]
    assert r[0] < r[1] < r[2] < full["r"], r


def test_ld_decay_by_hand():
    pos = np.array([100, 200, 400, 800])
    # Pair distances: (0,1) 100, (1,2) 200, (0,2) 300, (2,3) 400, (1,3) 600, (0,3) 700.
    out = popgen.ld_decay(REAL, SYN, pos, window=4, bins=np.array([0, 150, 350, 750]))
    np.testing.assert_array_equal(out["n_pairs"], [1, 2, 3])
    np.testing.assert_allclose(out["real"], [1 / 2, (9 / 16 + 1 / 8) / 2, 0])
    np.testing.assert_allclose(out["synthetic"], [0, (1 / 3 + 1 / 3) / 2, (0 + 1 + 1 / 3) / 3])
    auto = popgen.ld_decay(REAL, REAL, pos, window=4, bins=2)
    np.testing.assert_allclose(auto["bin_edges"], [0, 350, 700])
    assert auto["mae"] == 0.0


def test_hudson_fst_by_hand():
    # p1 = [.5, .5, .5, 0] with n1 = 12 haplotypes; p2 = [.75, .25, .125, .25] with n2 = 8.
    # N = (p1 - p2)^2 - p1(1 - p1)/11 - p2(1 - p2)/7; D = p1(1 - p2) + p2(1 - p1).
    num = [(0.25 ** 2) - 0.25 / 11 - 0.75 * 0.25 / 7,
           (0.25 ** 2) - 0.25 / 11 - 0.25 * 0.75 / 7,
           (0.375 ** 2) - 0.25 / 11 - 0.125 * 0.875 / 7,
           (0.25 ** 2) - 0.0 - 0.25 * 0.75 / 7]
    den = [0.5 * 0.25 + 0.75 * 0.5, 0.5 * 0.75 + 0.25 * 0.5, 0.5 * 0.875 + 0.125 * 0.5,
           0.0 + 0.25 * 1.0]
    assert popgen.hudson_fst(REAL, SYN) == pytest.approx(sum(num) / sum(den))
    out = popgen.fst(REAL, SYN, np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 1]))
    assert out["overall"] == pytest.approx(sum(num) / sum(den))
    assert set(out["per_population"]) == {"0", "1"}
    assert out["per_population"]["0"] == pytest.approx(popgen.hudson_fst(REAL[:3], SYN[:2]))


def test_fst_pca_pairwise_separate_populations():
    rng = np.random.default_rng(7)
    a, b = _hwe(200, _HWE_P, rng), _hwe(200, _HWE_P, rng)
    far = _hwe(200, np.clip(_HWE_P[::-1] + 0.3, 0, 1), rng)  # a different population
    assert abs(popgen.hudson_fst(a, b)) < 0.01 < popgen.hudson_fst(a, far)
    # PCA fitted on a two-population cohort: PC1 separates them. A synthetic cohort with both
    # populations overlaps it; one with only the first population does not.
    p_far = np.clip(_HWE_P[::-1] + 0.3, 0, 1)
    real = np.concatenate([a[:100], far[:100]])
    good = np.concatenate([b[:100], _hwe(100, p_far, rng)])
    same = popgen.pca_comparison(real, good, n_components=3)
    diff = popgen.pca_comparison(real, b, n_components=3)
    assert same["real_coords"].shape == (200, 3) and same["synthetic_coords"].shape == (200, 3)
    assert diff["wasserstein"][0] > 5 * same["wasserstein"][0]
    assert same["explained_variance_ratio"][0] > 0.1
    assert popgen.pca_comparison(a, a, n_components=3)["wasserstein_mean"] == pytest.approx(
        0.0, abs=1e-6)
    pw_same = popgen.pairwise_distance_distributions(a[:50], a[:50], n=50)  # no subsampling
    assert pw_same["wasserstein_within"] == 0.0
    assert pw_same["values"]["real_to_synthetic"].min() == 0.0  # each person meets their copy
    pw = popgen.pairwise_distance_distributions(a, far, n=50)
    assert pw["wasserstein_cross"] > popgen.pairwise_distance_distributions(a, b, n=50)[
        "wasserstein_cross"]
    np.testing.assert_allclose(pw["values"]["within_real"].size, 50 * 49 / 2)


def test_independent_sites_keeps_af_loses_ld():
    rng = np.random.default_rng(8)
    train, train_labels = _blocks(400, rng)
    test, _ = _blocks(400, rng)
    indep, labels = references.get_reference("independent_sites")(train, train_labels,
                                                                    train_labels, rng)
    np.testing.assert_array_equal(labels, train_labels)
    af = popgen.af_correlation(train, indep, train_labels, labels)
    assert af["overall"]["r"] > 0.99 and af["overall"]["mae"] < 0.03
    assert all(v["r"] > 0.98 for v in af["per_population"].values())
    assert af["per_population_mean_r"] == pytest.approx(
        np.mean([v["r"] for v in af["per_population"].values()]))
    # The same people under each other's labels keep the overall AF and lose the per-class one.
    swapped = popgen.af_correlation(train, indep, train_labels, (labels + 1) % (labels.max() + 1))
    assert swapped["overall"]["r"] == af["overall"]["r"]
    assert swapped["per_population_mean_r"] < af["per_population_mean_r"] - 0.05
    # Within one population, independent sites leave only sampling noise in r^2.
    pop0 = train_labels == 0
    ld_real = popgen.ld_correlation(train[pop0], test[pop0], window=10)
    ld_indep = popgen.ld_correlation(train[pop0], indep[labels == 0], window=10)
    assert ld_real["r"] > 0.9  # a held-out real split keeps the block structure
    assert abs(ld_indep["r"]) < 0.2
    assert ld_indep["mean_r2_synthetic"] < 0.1 * ld_real["mean_r2_synthetic"]
    # Pooled over both populations, drawing each from its own AFs keeps the LD that population
    # structure makes (admixture LD), so the correlation is higher but still far below real.
    pooled_real = popgen.ld_correlation(train, test, window=10)["r"]
    pooled_indep = popgen.ld_correlation(train, indep, window=10)["r"]
    assert pooled_indep < 0.6 < 0.9 < pooled_real


def test_fidelity_runs_every_metric():
    rng = np.random.default_rng(9)
    real, labels = _blocks(60, rng)
    syn, syn_labels = _blocks(60, rng)
    out = popgen.fidelity(real, syn, np.arange(real.shape[1]) * 50, real_labels=labels,
                          synthetic_labels=syn_labels, window=10, n_components=3, n_pairwise=30)
    assert set(out) == {"af", "genotypes", "ld", "ld_decay", "pca", "fst", "pairwise"}
    assert out["af"]["overall"]["r"] > 0.8 and out["ld"]["r"] > 0.8
    assert set(out["fst"]["per_population"]) == {"0", "1"}


# ---------------------------------------------------------------------------------------------
# Privacy


def test_membership_inference_and_dcr():
    rng = np.random.default_rng(10)
    train, test, fresh = _hwe(200, _HWE_P, rng), _hwe(200, _HWE_P, rng), _hwe(400, _HWE_P, rng)
    copies, _ = references.train_copies(train, None, 600, rng)  # covers ~95 % of train
    ok = privacy.privacy(train, test, fresh)
    leak = privacy.privacy(train, test, copies)
    assert abs(ok["membership"]["auc"] - 0.5) < 0.1
    assert leak["membership"]["auc"] > 0.8
    assert ok["identical"]["n_identical"] == 0 and leak["identical"]["n_identical"] == 600
    # DCR: fresh people sit as far from train as the held-out baseline; copies sit at 0.
    assert ok["dcr"]["share_below_baseline_q05"] < 0.15 and ok["dcr"]["share_zero"] == 0.0
    assert leak["dcr"]["share_zero"] == 1.0 and leak["dcr"]["share_below_baseline_q05"] == 1.0
    assert ok["dcr"]["synthetic"]["q50"] == pytest.approx(ok["dcr"]["baseline"]["q50"], rel=0.1)
    assert privacy.membership_inference(train, test, copies, max_n=50)["n_members"] == 50


# ---------------------------------------------------------------------------------------------
# Reference generators


def test_references_registry_and_classes():
    rng = np.random.default_rng(11)
    train, train_labels = _blocks(40, rng)
    test, test_labels = _blocks(20, rng)
    assert {"real_test", "independent_sites", "train_copies"} <= set(references.REFERENCES)
    calls, labels = references.get_reference("real_test")(train, train_labels, 5, rng,
                                                          test_calls=test, test_labels=test_labels)
    np.testing.assert_array_equal(calls, test)
    np.testing.assert_array_equal(labels, test_labels)
    want = np.array([1, 0, 1, 1])
    calls, labels = references.train_copies(train, train_labels, want, rng)
    np.testing.assert_array_equal(labels, want)
    for row, c in zip(calls, labels):  # each row is a training genome of the requested class
        assert any(np.array_equal(row, t) for t in train[train_labels == c])
    calls, labels = references.independent_sites(train, train_labels, 3, rng)
    assert calls.dtype == np.int8 and calls.shape == (6, train.shape[1])
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="no training examples"):
        references.train_copies(train, train_labels, np.array([2]), rng)
    with pytest.raises(ValueError, match="unknown reference"):
        references.get_reference("nope")



def test_mosaic_keeps_af_and_ld_better_than_independent_sites():
    rng = np.random.default_rng(12)
    haps, labels = _block_haplotypes(400, rng)
    train, test = haps.sum(axis=1, dtype=np.int8), _blocks(400, rng)[0]
    calls, got, copied = references.mosaic(train, labels, labels, rng, segment_length=20,
                                           train_haplotypes=haps)
    np.testing.assert_array_equal(got, labels)
    np.testing.assert_array_equal(copied.sum(axis=1), calls)
    indep, _ = references.independent_sites(train, labels, labels, rng)
    af = popgen.af_correlation(train, calls, labels, labels)["per_population"]
    assert all(v["r"] > 0.98 for v in af.values())
    pop0 = labels == 0
    ld = {name: popgen.ld_correlation(train[pop0], x[pop0], window=10)["r"]
          for name, x in (("test", test), ("mosaic", calls), ("indep", indep))}
    # Measured: 0.93 for the mosaic, -0.04 for independent sites, 0.99 for real held-out people.
    assert ld["mosaic"] > 0.8 and ld["indep"] < 0.2 and ld["test"] > 0.9, ld
    # Mean length -> infinity: each haplotype (genotype row, without haplotypes) is a training
    # one of its class; `chroms` starts a new segment at each chromosome.
    pool = haps.reshape(-1, 80)
    for length in (np.inf, 1e12):
        _, want, copied = references.mosaic(train, labels, labels[::50], rng,
                                            segment_length=length, train_haplotypes=haps)
        for row, c in zip(copied.reshape(-1, 80), np.repeat(want, 2)):
            assert (pool[np.repeat(labels, 2) == c] == row).all(axis=1).any()
    rows, want = references.mosaic(train, labels, 3, rng, segment_length=np.inf,
                                   chroms=np.repeat(["1", "2"], 40))
    for row, c in zip(rows, want):
        for part in (slice(0, 40), slice(40, 80)):
            assert (train[labels == c][:, part] == row[part]).all(axis=1).any()
    with pytest.raises(ValueError, match="at least 1 SNP"):
        references.mosaic(train, labels, 3, rng, segment_length=0.5)


def test_longest_identical_runs_equal_brute_force_and_find_copies():
    rng = np.random.default_rng(13)
    queries = (rng.random((7, 40)) < 0.2).astype(np.int8)
    reference = (rng.random((9, 40)) < 0.2).astype(np.int8)
    reference[3, 5:30] = queries[2, 5:30]  # a shared segment of 25 SNPs
    brute = np.zeros(7, np.int64)
    for i, j in np.ndindex(7, 9):
        run = 0
        for a, b in zip(queries[i], reference[j]):
            run = run + 1 if a == b else 0
            brute[i] = max(brute[i], run)
    assert brute[2] >= 25
    np.testing.assert_array_equal(segments.longest_identical_runs(queries, reference, block=3),
                                  brute)
    people = np.stack([queries[:3], queries[3:6]], axis=1)  # the max over two haplotypes
    np.testing.assert_array_equal(segments.person_longest_runs(people, reference),
                                  np.maximum(brute[:3], brute[3:6]))
    calls = rng.integers(0, 3, (5, 30)).astype(np.int8)
    np.testing.assert_array_equal(segments.longest_identical_runs(calls, calls[::-1]), 30)
