"""Per-gene PCA codec: lossless when all components are kept, PCA-optimal when truncated."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from genodiff_jax.data import codec as C
from genodiff_jax.data import genes, io


def _cohort(n=120, s=400, seed=0):
    rng = np.random.default_rng(seed)
    # Correlated SNPs (a few latent haplotype factors) so PCA has structure to find.
    latent = rng.normal(size=(n, 6))
    logits = latent @ rng.normal(size=(6, s)) + rng.normal(size=s)
    p = 1 / (1 + np.exp(-logits))
    dosages = rng.binomial(2, p).astype(np.int8)
    v = io.Variants(np.array(["1"] * s), np.arange(s, dtype=np.int64) * 10 + 1,
                    np.array(["."] * s), np.array(["A"] * s), np.array(["C"] * s))
    return dosages, v


def _sized_genes(sizes):
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return genes.GeneAssignment.from_lists([f"g{i}" for i in range(len(sizes))],
                                           [np.arange(a, b) for a, b in zip(offsets, offsets[1:])])


def test_all_components_decode_encode_is_exact():
    x, v = _cohort()
    assignment = genes.window_genes(v, 37)  # sizes 37 and a remainder: two buckets
    codec = C.GeneCodec.fit(x, assignment, rule=C.all_components)
    assert codec.feature_shape[1] >= 37
    np.testing.assert_array_equal(C.to_calls(codec.decode(codec.encode(x))), x)


def test_dual_pca_path_is_exact_too():
    x, v = _cohort(n=40, s=300)  # 150-SNP genes > 40 people: the n x n Gram path
    codec = C.GeneCodec.fit(x, genes.window_genes(v, 150), rule=C.all_components)
    np.testing.assert_array_equal(C.to_calls(codec.decode(codec.encode(x))), x)


def test_truncated_reconstruction_error_equals_discarded_variance():
    x, _ = _cohort()
    assignment = _sized_genes([3, 12, 60, 300, 25])  # the 8/4/1 rule: 1, 4, 8, 8, 8 components
    codec = C.GeneCodec.fit(x, assignment)
    assert list(codec.n_components) == [1, 4, 8, 8, 8]
    recon = codec.decode(codec.encode(x))
    err = ((recon - x) ** 2).sum(axis=1).mean()
    discarded = codec.total_variance.sum() - codec.explained_variance.sum()
    np.testing.assert_allclose(err, discarded, rtol=1e-4)
    # ... and the kept variance is the true PCA spectrum (sklearn, gene by gene).
    for g in range(len(assignment)):
        k = codec.n_components[g]
        pca = PCA(n_components=k, svd_solver="full").fit(x[:, assignment.members(g)])
        ddof_fix = (len(x) - 1) / len(x)  # sklearn uses 1/(n-1)
        np.testing.assert_allclose(codec.explained_variance[g, :k],
                                   pca.explained_variance_ * ddof_fix, rtol=1e-6)


def test_features_are_z_scored_on_train_and_padded_slots_are_zero():
    x, v = _cohort(n=150)
    train, test = x[:100], x[100:]
    codec = C.GeneCodec.fit(train, genes.window_genes(v, 10))  # 40 genes x 4 components
    f_train, f_test = codec.encode(train), codec.encode(test)
    assert f_train.shape == (100, 128, 8) and codec.mask.sum() == 40 * 4
    np.testing.assert_allclose(f_train.mean(0)[codec.mask], 0, atol=1e-5)
    np.testing.assert_allclose(f_train.std(0)[codec.mask], 1, atol=1e-4)
    assert not f_train[:, ~codec.mask].any() and not f_test[:, ~codec.mask].any()
    assert abs(f_test.mean(0)[codec.mask]).max() > 1e-3  # test rows were not used to fit


def test_overlapping_genes_are_averaged_on_decode():
    x, _ = _cohort(n=80, s=60)
    shared = genes.GeneAssignment.from_lists(["a", "b"], [np.arange(0, 40), np.arange(20, 60)])
    codec = C.GeneCodec.fit(x, shared, rule=C.all_components)
    np.testing.assert_array_equal(C.to_calls(codec.decode(codec.encode(x))), x)


def test_save_load_round_trip(tmp_path):
    x, v = _cohort()
    codec = C.GeneCodec.fit(x, genes.window_genes(v, 30))
    codec.save(tmp_path / "codec.npz")
    loaded = C.GeneCodec.load(tmp_path / "codec.npz")
    np.testing.assert_array_equal(loaded.encode(x), codec.encode(x))
    np.testing.assert_array_equal(loaded.gene_names, codec.gene_names)
    np.testing.assert_array_equal(loaded.variant_variance, codec.variant_variance)


def test_kept_variance_fraction_is_each_variants_reconstruction_r2(tmp_path):
    """Per variant, 1 - (training reconstruction error) / (training variance), exactly; a codec
    saved before variant variances were stored estimates it from 2p(1 - p), scaled per gene."""
    x, _ = _cohort()
    assignment = _sized_genes([3, 12, 60, 300, 25])  # 1, 4, 8, 8, 8 components
    codec = C.GeneCodec.fit(x, assignment)
    kept = codec.kept_variance_fraction()
    var = x.var(axis=0)
    resid = ((codec.decode(codec.encode(x)) - x) ** 2).mean(axis=0)
    truth = np.where(var > 0, 1 - resid / np.maximum(var, 1e-12), 1.0)
    np.testing.assert_allclose(kept, truth, atol=1e-4)
    assert kept[:3].max() < 1 and kept[75:375].min() < 0.2  # truncated genes lose some variants
    lossless = C.GeneCodec.fit(x[:, :12], _sized_genes([3, 8, 1]), rule=C.all_components)
    np.testing.assert_allclose(lossless.kept_variance_fraction(), 1.0, atol=1e-5)
    # An older codec file (no variant_variance): the estimate, close to the truth.
    codec.variant_variance = None
    codec.save(tmp_path / "old.npz")
    old = C.GeneCodec.load(tmp_path / "old.npz")
    assert old.variant_variance is None
    estimate = old.kept_variance_fraction()
    assert np.corrcoef(estimate, truth)[0, 1] > 0.9 and np.abs(estimate - truth).mean() < 0.06


def test_twenty_thousand_genes_encode_vectorised():
    rng = np.random.default_rng(1)
    n, s = 64, 100_000
    x = rng.binomial(2, rng.uniform(0.05, 0.5, s), size=(n, s)).astype(np.int8)
    sizes = rng.integers(1, 9, size=20_000)
    sizes = sizes[np.cumsum(sizes) <= s]
    assignment = _sized_genes(sizes)
    codec = C.GeneCodec.fit(x, assignment)
    assert len(codec.buckets) <= 8  # grouped by size, not one PCA per gene
    f = codec.encode(x)
    assert f.shape == (n, C.pad_genes(len(sizes)), 8) and np.isfinite(f).all()


def test_fitting_on_row_indices_equals_fitting_on_the_copied_rows():
    x, v = _cohort(n=150)
    train = np.arange(0, 150, 3)
    assignment = genes.window_genes(v, 30)
    by_index = C.GeneCodec.fit(x, assignment, rows=train)
    by_copy = C.GeneCodec.fit(x[train], assignment)
    np.testing.assert_allclose(by_index.encode(x), by_copy.encode(x), atol=1e-5)


def test_restricting_a_codec_to_the_used_columns_equals_fitting_on_them():
    """Fit on the full matrix, then renumber to the columns the genes read: the same codec as one
    fitted on a copy of those columns (what `prepare` did before it stopped copying)."""
    x, _ = _cohort(s=400)
    read = [np.arange(10, 60), np.arange(100, 130), np.arange(120, 200), np.arange(300, 310)]
    assignment = genes.GeneAssignment.from_lists(["a", "b", "c", "d"], read)
    used = assignment.used_snps
    restricted = C.GeneCodec.fit(x, assignment).restricted_to(used)
    on_copy = C.GeneCodec.fit(x[:, used], genes.GeneAssignment.from_lists(
        ["a", "b", "c", "d"], [np.searchsorted(used, r) for r in read]))
    assert restricted.n_variants == on_copy.n_variants == len(used) == 160
    for mine, theirs in zip(restricted.buckets, on_copy.buckets):
        np.testing.assert_array_equal(mine.columns, theirs.columns)
        np.testing.assert_array_equal(mine.loadings, theirs.loadings)
    np.testing.assert_array_equal(restricted.encode(x[:, used]), on_copy.encode(x[:, used]))
    np.testing.assert_array_equal(restricted.decode(on_copy.encode(x[:, used])),
                                  on_copy.decode(on_copy.encode(x[:, used])))
    np.testing.assert_allclose(restricted.kept_variance_fraction(),
                               on_copy.kept_variance_fraction(), atol=1e-6)
    with pytest.raises(ValueError, match="not in `used`"):
        C.GeneCodec.fit(x, assignment).restricted_to(used[1:])
