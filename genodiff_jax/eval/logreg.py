"""A logistic regression on SNP calls (scikit-learn), and its recovery rate (DESIGN 1.4, 6).

The Flax classifiers of `classifiers.py` read gene-PCA features, so they cannot see what the codec
drops (rare and private variation); this one reads the calls themselves.

`snp_logreg()`: standardised calls (training-set mean and std; a constant SNP stays 0), then an
L2-penalised logistic regression (multinomial over classes) with a fixed C = 0.01. Why fixed and
why 0.01: with far more SNPs than people the classes are linearly separable, so an unpenalised
fit diverges; a strong penalty keeps it stable and fast.
Measured on LCT (2253 training people, 7643 SNPs, 5 super-populations), the numbers barely move
over C in [0.001, 1]: held-out accuracy 0.85 to 0.82, two-sample AUC of real vs real 0.48 to
0.49, of codec-decoded real people vs real 0.94 to 0.97 (0.97 at C = 0.01, the most sensitive);
a cross-validation over C would cost several fits per number for no change. Solver newton-cg
with tol 1e-3: on LCT it gives lbfgs's accuracy (0.841) in half the time (12 iterations, about
9 s for 2253 people on a busy 2-core machine, against 19 s).

`snp_recovery`: R = a_syn / a_real, a_syn the held-out accuracy of the regression trained on a
generator's calls, a_real that of one trained on the real training split. The fit is
deterministic, so there is one "seed" and no spread.
"""

from __future__ import annotations

import warnings

import numpy as np

SNP_LOGREG = "snp_logreg"  # its name in the recovery table
C = 0.01
MAX_ITER = 200
TOL = 1e-3


def snp_logreg(c: float = C, max_iter: int = MAX_ITER):
    """An unfitted pipeline: StandardScaler, then L2 logistic regression with inverse penalty c."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="newton-cg", tol=TOL,
                                                              max_iter=max_iter))


def fit_snp_logreg(calls: np.ndarray, labels: np.ndarray, c: float = C):
    """`snp_logreg` fitted on calls [n, S] (as float32) and labels [n]; one class: a constant."""
    from sklearn.dummy import DummyClassifier
    from sklearn.exceptions import ConvergenceWarning

    x, y = np.asarray(calls, np.float32), np.asarray(labels)
    if np.unique(y).size < 2:
        return DummyClassifier(strategy="most_frequent").fit(x, y)
    with warnings.catch_warnings():  # the penalised fit is good well before the tolerance
        warnings.simplefilter("ignore", ConvergenceWarning)
        return snp_logreg(c).fit(x, y)


def snp_accuracy(train_calls: np.ndarray, train_labels: np.ndarray, test_calls: np.ndarray,
                 test_labels: np.ndarray) -> float:
    """Accuracy on (test_calls, test_labels) of `fit_snp_logreg` on the training pair."""
    model = fit_snp_logreg(train_calls, train_labels)
    return float(model.score(np.asarray(test_calls, np.float32), np.asarray(test_labels)))


def snp_recovery(a_real: float, synthetic_calls: np.ndarray, synthetic_labels: np.ndarray,
                 test_calls: np.ndarray, test_labels: np.ndarray, *, seed: int = 0) -> dict:
    """The recovery entry of a generator, keys as `transfer.recovery_rates`' (one seed):
    `a_real` is `snp_accuracy` of the real training split on the same test split."""
    a_syn = snp_accuracy(synthetic_calls, synthetic_labels, test_calls, test_labels)
    recovery = a_syn / a_real if a_real > 0 else None
    return {"a_real_mean": a_real, "a_real_std": 0.0, "a_syn_mean": a_syn, "a_syn_std": 0.0,
            "recovery_mean": recovery, "recovery_std": 0.0 if recovery is not None else None,
            "a_real": [a_real], "a_syn": [a_syn],
            "recovery": None if recovery is None else [recovery], "seeds": [seed]}


def snp_confusion(train_calls: np.ndarray, train_labels: np.ndarray, test_calls: np.ndarray,
                  test_labels: np.ndarray, num_classes: int) -> dict:
    """`fit_snp_logreg` on the training pair, tested on the test pair: {"counts" [K, K] int (rows:
    true class, columns: predicted), "recall" [K] (NaN for a class absent from the test pair),
    "accuracy", "balanced_accuracy" (mean recall over the classes present)}."""
    model = fit_snp_logreg(train_calls, train_labels)
    truth = np.asarray(test_labels, np.int64)
    predicted = np.asarray(model.predict(np.asarray(test_calls, np.float32)), np.int64)
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (truth, predicted), 1)
    n = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(counts) / n
    return {"counts": counts, "recall": recall,
            "accuracy": float(np.diag(counts).sum() / max(1, counts.sum())),
            "balanced_accuracy": float(np.nanmean(recall)) if (n > 0).any() else float("nan")}
