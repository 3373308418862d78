"""Classifiers, recovery rate and augmentation (DESIGN 1.4) on toy Gaussian clusters, CPU; the
SNP-level logistic regression (recovery, two-sample test) on toy Hardy-Weinberg calls.

The toy: 3 classes, features [N, 128, 8] whose mask keeps 1, 4 or 8 components per gene; class c
has mean mu_c (fixed across draws) on the real slots plus unit noise; padded slots hold large
garbage that only the mask keeps out. `sep` scales the means: 0.6 is easy, 0.15 needs data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from genodiff_jax.eval.classifiers import CLASSIFIERS, FitSettings, fit_classifier
from genodiff_jax.eval.transfer import (
    Labeled,
    augmentation,
    recovery_rates,
    stratified_subsample,
)

C = 3


def toy(n: int, seed: int, sep: float, G: int = 128, K: int = 8) -> tuple[Labeled, np.ndarray]:
    """A balanced draw of n people; the class means and the mask do not depend on `seed`."""
    fixed = np.random.default_rng(123)
    mask_GxK = np.arange(K)[None, :] < fixed.choice([1, 4, 8], size=G)[:, None]
    mu_CxGxK = sep * fixed.normal(size=(C, G, K))
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % C)
    x = np.where(mask_GxK, mu_CxGxK[y] + rng.normal(size=(n, G, K)),
                 5.0 * rng.normal(size=(n, G, K)))
    return Labeled(x.astype(np.float32), y), mask_GxK


def balanced_relabel(labels: np.ndarray, seed: int) -> np.ndarray:
    """Labels independent of the true class: within each true class, every label equally often.

    A plain permutation leaves a chance correlation, and with well-separated clusters a classifier
    maps each cluster to its most frequent shuffled label, so test accuracy would jump in steps of
    1/3 instead of staying near chance.
    """
    rng = np.random.default_rng(seed)
    out = np.empty_like(labels)
    for c in range(C):
        rows = np.flatnonzero(labels == c)
        out[rows] = rng.permutation(np.arange(len(rows)) % C)
    return out


@pytest.fixture(scope="module")
def easy() -> tuple[Labeled, Labeled, np.ndarray]:
    train, mask = toy(300, seed=1, sep=0.6)
    test, _ = toy(300, seed=2, sep=0.6)
    return train, test, mask


@pytest.fixture(scope="module")
def hard() -> tuple[Labeled, Labeled, np.ndarray]:
    train, mask = toy(300, seed=1, sep=0.15)
    test, _ = toy(300, seed=2, sep=0.15)
    return train, test, mask


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_classifier_learns_clusters_and_is_near_chance_on_shuffled_labels(name, easy):
    train, test, mask = easy
    fitted = fit_classifier(name, *train, C, mask=mask, seed=0, fit=FitSettings(epochs=10))
    assert fitted.loss_history[-1] < fitted.loss_history[0]
    assert fitted.accuracy(*test) > 0.9
    shuffled = fit_classifier(name, train.features, balanced_relabel(train.labels, 0), C,
                              mask=mask, seed=0, fit=FitSettings(epochs=10))
    assert abs(shuffled.accuracy(*test) - 1 / C) < 0.15


def test_padded_slots_do_not_reach_the_classifier(easy):
    train, test, mask = easy
    fitted = fit_classifier("mlp", *train, C, mask=mask, seed=0, fit=FitSettings(epochs=10))
    other = np.where(mask, test.features, 1e3).astype(np.float32)
    np.testing.assert_array_equal(fitted.logits(test.features), fitted.logits(other))


def test_same_seed_same_classifier_other_seed_differs(easy):
    train, test, mask = easy
    # Dropout and batch order act only with several steps an epoch, so train on 100 people.
    sub = Labeled(train.features[:100], train.labels[:100])
    fits = [fit_classifier("mlp", *sub, C, mask=mask, seed=s,
                           fit=FitSettings(epochs=3, batch_size=32))
            for s in (5, 5, 6)]
    logits = [f.logits(test.features) for f in fits]
    np.testing.assert_array_equal(logits[0], logits[1])
    assert fits[0].accuracy(*test) == fits[1].accuracy(*test)
    assert fits[0].loss_history == fits[1].loss_history
    assert not np.allclose(logits[0], logits[2])


def test_recovery_of_a_second_real_draw_is_near_one(hard):
    train, test, mask = hard
    second_draw, _ = toy(300, seed=3, sep=0.15)
    result = recovery_rates(train, test, second_draw, classifiers=("mlp",), seeds=(0, 1, 2),
                            mask=mask)
    mlp = result["mlp"]
    # Hard enough that accuracy is not saturated, so R ~ 1 says the draws teach the same thing.
    assert 0.8 < mlp["a_real_mean"] < 0.99
    assert abs(mlp["recovery_mean"] - 1.0) < 0.1
    assert len(mlp["recovery"]) == 3 and mlp["recovery_std"] < 0.1
    assert json.loads(json.dumps(result)) == result


def test_recovery_with_random_labels_is_far_below_one(easy):
    train, test, mask = easy
    draw, _ = toy(300, seed=3, sep=0.6)
    synthetic = (draw.features, balanced_relabel(draw.labels, 1))
    result = recovery_rates(train, test, synthetic, seeds=(0,), mask=mask)
    assert set(result) == {"mlp", "cnn", "transformer"}
    for name, r in result.items():
        assert {"a_real_mean", "a_real_std", "a_syn_mean", "a_syn_std", "recovery_mean",
                "recovery_std"} <= set(r), name
        assert r["a_real_mean"] > 0.9, name
        assert r["recovery_mean"] < 0.6, name
        assert r["recovery_std"] == 0.0  # one seed
    json.dumps(result)


def test_good_synthetic_data_lifts_a_small_real_fraction(hard):
    train, test, mask = hard
    synthetic, _ = toy(600, seed=3, sep=0.15)
    fractions = (0.05, 0.1, 0.2, 0.5)
    result = augmentation(train, test, synthetic, fractions=fractions, seeds=(0, 1), mask=mask)
    assert json.loads(json.dumps(result)) == result
    assert result["fractions"] == list(fractions)
    assert result["n_real"] == [15, 30, 60, 150]
    assert result["n_synthetic"] == 600
    for key in ("real_only", "real_plus_synthetic"):
        assert len(result[key]["mean"]) == len(result[key]["std"]) == len(fractions)
        assert np.array(result[key]["values"]).shape == (len(fractions), 2)
    alone, with_syn = result["real_only"]["mean"], result["real_plus_synthetic"]["mean"]
    # 5 people a class cannot pin 500+ noisy dimensions; 600 more from the same law can.
    assert with_syn[0] > alone[0] + 0.2
    assert alone[0] < alone[-1]  # more real data helps on its own
    assert result["synthetic_only"] > 0.85
    assert isinstance(result["synthetic_only"], float)


def test_stratified_subsample_keeps_every_class_and_nests():
    labels = np.array([0] * 100 + [1] * 10 + [2] * 2)
    small = stratified_subsample(labels, 0.05, seed=0)
    assert np.bincount(labels[small], minlength=3).tolist() == [5, 1, 1]
    large = stratified_subsample(labels, 0.5, seed=0)
    assert np.bincount(labels[large], minlength=3).tolist() == [50, 5, 1]
    assert set(small) <= set(large)
    np.testing.assert_array_equal(small, stratified_subsample(labels, 0.05, seed=0))
    assert not np.array_equal(large, stratified_subsample(labels, 0.5, seed=1))
    with pytest.raises(ValueError):
        stratified_subsample(labels, 0.0, seed=0)


# -- SNP-level logistic regression: recovery and the classifier two-sample test -------------------

def calls_toy(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Calls [n, 300] under Hardy-Weinberg from class-specific allele frequencies (close to each
    other, fixed across draws), moved by `shift`; labels [n] of 3 classes."""
    fixed = np.random.default_rng(321)
    p_CxS = fixed.uniform(0.1, 0.6, size=300) + fixed.normal(0, 0.04, size=(C, 300))
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % C)
    return rng.binomial(2, np.clip(p_CxS[y] + shift, 0, 1)).astype(np.int8), y


def test_snp_logreg_recovery_is_near_one_for_train_copies_and_low_for_random_labels():
    from genodiff_jax.eval.logreg import snp_accuracy, snp_recovery
    from genodiff_jax.eval.references import train_copies

    (train, y_train), (test, y_test) = calls_toy(300, 1), calls_toy(150, 2)
    a_real = snp_accuracy(train, y_train, test, y_test)
    assert 0.7 < a_real < 0.9  # measured 0.79: hard enough that less data would show
    copies, y_copies = train_copies(train, y_train, y_train, np.random.default_rng(0))
    rec = snp_recovery(a_real, copies, y_copies, test, y_test)
    assert rec["recovery_mean"] == pytest.approx(1.0, abs=0.1) and rec["seeds"] == [0]  # 0.94
    assert snp_recovery(a_real, train[:60], y_train[:60], test, y_test)["recovery_mean"] < 0.8
    shuffled = snp_recovery(a_real, train, np.random.default_rng(0).permutation(y_train), test,
                            y_test)
    assert shuffled["recovery_mean"] < 0.6
    one_class = snp_recovery(a_real, train[y_train == 0], y_train[y_train == 0], test, y_test)
    assert one_class["a_syn_mean"] == pytest.approx(np.mean(y_test == 0))


def test_two_sample_auc_is_half_for_one_distribution_and_one_for_two():
    from genodiff_jax.eval.twosample import two_sample_auc

    real, _ = calls_toy(400, 3)
    same = two_sample_auc(real, calls_toy(500, 4)[0], seed=0)  # other seeds: 0.47-0.55
    other = two_sample_auc(real, calls_toy(400, 5, shift=0.1)[0], seed=0)
    assert abs(same["auc"] - 0.5) < 0.08 and same["n_per_side"] == 400 and same["folds"] == 5
    assert other["auc"] > 0.95, other
    assert two_sample_auc(real, real[:3])["folds"] == 3  # fewer people than folds
    assert two_sample_auc(real, real[:1])["auc"] is None
