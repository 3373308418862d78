"""The sweep's quality panel: a few fast numbers per synthetic cohort, each against the real
held-out people.

Each measure is one function in `PANEL`, found by name:

    @register_measure("name", label="...", ideal=..., lo=..., hi=...)
    def name(cohort: Cohort, real: RealPanel) -> dict[str, float | None]: ...

It returns its numbers as a flat dict whose key `name` is the headline (plotted and tabled);
other keys, prefixed with the name, are extras for sweep.json / sweep.csv. None stands for "not
defined here" (e.g. Frechet distance without features). The metric code itself lives in
`genodiff_jax.eval` (popgen, nnaa, twosample); this module only picks what a sweep needs:

- `frechet`: Frechet distance between the real held-out and synthetic gene-PCA features (the
  dataset's z-scored space, real components only: `data.mask`), exact via the nuclear-norm form
  (`frechet_distance`), so it works whatever the number of features;
- `af_r`: Pearson r of allele frequencies (`popgen.af_correlation`);
- `ld_r`: Pearson r of LD r^2 over windows of SNPs (`popgen.ld_correlation`);
- `nnaa`: nearest-neighbour adversarial accuracy on genotypes, Hamming distance, equal sizes, ties
  counted half (`nnaa.adversarial_accuracy`); 0.5 is ideal;
- `two_sample_auc`: the cross-validated classifier two-sample AUC (`twosample.two_sample_auc`);
  0.5 is ideal;
- `snp_accuracy`: the held-out accuracy of the SNP-level logistic regression trained on the cohort
  (`logreg.snp_accuracy`): does the cohort carry its labels? Its ideal is the real training
  split's accuracy, the sweep's reference row (divide by it for the recovery rate).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from genodiff_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class PanelSettings:
    """How hard the panel works: sizes are capped so every cell stays cheap."""

    ld_window: int = 100  # SNPs per LD window (as the report's fidelity section)
    max_nnaa: int = 1000  # people per side in NNAA
    two_sample_folds: int = 5
    max_two_sample: int = 1000  # people per side in the two-sample test
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Cohort:
    """A cohort to score: calls int8 [n, S], labels int32 [n], and gene-PCA features [n, G, K]
    in the dataset's z-scored space (None where there are none)."""

    calls: np.ndarray
    labels: np.ndarray
    features: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class RealPanel:
    """What every measure compares against: the real held-out people, the features' mask [G, K],
    each variant's chromosome [S] (LD windows never cross one) and the settings."""

    test: Cohort
    mask: np.ndarray
    chroms: np.ndarray | None
    settings: PanelSettings = PanelSettings()


MeasureFn = Callable[[Cohort, RealPanel], dict]


@dataclasses.dataclass(frozen=True)
class Measure:
    """A panel entry: `compute(cohort, real) -> {name: headline, name_extra: ...}`, an axis label,
    the value of a perfect generator (`ideal`, None when there is no fixed one) and the range the
    headline lies in (`lo`, `hi`; None: unbounded)."""

    compute: MeasureFn
    label: str
    ideal: float | None = None
    lo: float | None = None
    hi: float | None = None


PANEL: Registry[Measure] = Registry("panel measure")


def register_measure(name: str, *, label: str, ideal: float | None = None,
                     lo: float | None = None, hi: float | None = None):
    """`@register_measure("name", label=..., ...)` on `fn(cohort, real) -> dict`."""
    def add(fn: MeasureFn) -> MeasureFn:
        PANEL.register(name, Measure(fn, label, ideal, lo, hi))
        return fn
    return add


def _number(x) -> float | None:
    """A plain float, None for NaN/inf/None (undefined: e.g. r with a constant side)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


# -- Frechet distance ------------------------------------------------------------------------------

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to the rows of a [n, D] and b [m, D]:

        |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

    With centred X_a, X_b and S = X^T X / (n - 1), the non-zero eigenvalues of S_a S_b are the
    squared singular values of X_a X_b^T / sqrt((n - 1)(m - 1)), so the last trace is that
    matrix's nuclear norm: exact, an [n, m] SVD instead of a D x D matrix square root (D is
    ~200,000 features at the 1KG shape)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need rows [n, D] and [m, D], got {a.shape}, {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("the Frechet distance needs at least 2 rows on each side")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    xa, xb = a - mu_a, b - mu_b
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    cross = np.linalg.svd(xa @ xb.T / scale, compute_uv=False).sum()
    fd = (np.sum((mu_a - mu_b) ** 2) + np.sum(xa * xa) / (len(a) - 1)
          + np.sum(xb * xb) / (len(b) - 1) - 2.0 * cross)
    return float(max(fd, 0.0))  # rounding can take an exact 0 a hair below


@register_measure("frechet", label="Frechet distance (gene-PCA features)", ideal=0.0, lo=0.0)
def frechet(cohort: Cohort, real: RealPanel) -> dict:
    if cohort.features is None or real.test.features is None:
        return {"frechet": None}
    mask = np.asarray(real.mask, bool)
    fd = frechet_distance(real.test.features[:, mask], cohort.features[:, mask])
    return {"frechet": fd, "frechet_dims": int(mask.sum())}


# -- allele frequencies and LD ---------------------------------------------------------------------

@register_measure("af_r", label="allele-frequency r", ideal=1.0, lo=-1.0, hi=1.0)
def af_r(cohort: Cohort, real: RealPanel) -> dict:
    from genodiff_jax.eval.popgen import af_correlation

    overall = af_correlation(real.test.calls, cohort.calls)["overall"]
    return {"af_r": _number(overall["r"]), "af_r_mae": _number(overall["mae"])}


@register_measure("ld_r", label="LD r^2 correlation", ideal=1.0, lo=-1.0, hi=1.0)
def ld_r(cohort: Cohort, real: RealPanel) -> dict:
    from genodiff_jax.eval.popgen import ld_correlation

    ld = ld_correlation(real.test.calls, cohort.calls, window=real.settings.ld_window,
                        chroms=real.chroms)
    return {"ld_r": _number(ld["r"]), "ld_r_mae": _number(ld["mae"]),
            "ld_r_pairs": int(ld["n_pairs"])}


# -- telling synthetic from real -------------------------------------------------------------------

@register_measure("nnaa", label="NNAA vs held-out (genotypes)", ideal=0.5, lo=0.0, hi=1.0)
def nnaa(cohort: Cohort, real: RealPanel) -> dict:
    from genodiff_jax.eval.distances import subsample
    from genodiff_jax.eval.nnaa import adversarial_accuracy

    n = min(len(real.test.calls), len(cohort.calls), real.settings.max_nnaa)
    if n < 2:
        return {"nnaa": None}
    rng = np.random.default_rng(real.settings.seed)
    aa = adversarial_accuracy(subsample(real.test.calls, n, rng), subsample(cohort.calls, n, rng),
                              metric="hamming", ties="half")
    return {"nnaa": aa["aa"], "nnaa_truth": aa["aa_truth"], "nnaa_syn": aa["aa_syn"],
            "nnaa_n": n}


@register_measure("two_sample_auc", label="two-sample AUC vs held-out", ideal=0.5, lo=0.0,
                  hi=1.0)
def two_sample_auc(cohort: Cohort, real: RealPanel) -> dict:
    from genodiff_jax.eval.twosample import two_sample_auc as auc

    s = real.settings
    out = auc(real.test.calls, cohort.calls, folds=s.two_sample_folds, seed=s.seed,
              max_n=s.max_two_sample)
    return {"two_sample_auc": _number(out["auc"]), "two_sample_auc_std": _number(out["auc_std"])}


# -- carrying the label ----------------------------------------------------------------------------

@register_measure("snp_accuracy", label="SNP LR accuracy on held-out (trained on the cohort)",
                  lo=0.0, hi=1.0)
def snp_accuracy(cohort: Cohort, real: RealPanel) -> dict:
    from genodiff_jax.eval.logreg import snp_accuracy as accuracy

    if np.unique(real.test.labels).size < 2:
        return {"snp_accuracy": None}
    return {"snp_accuracy": accuracy(cohort.calls, cohort.labels, real.test.calls,
                                     real.test.labels)}


# -- the panel -------------------------------------------------------------------------------------

def measure_names(names: Sequence[str] | None = None) -> tuple[str, ...]:
    """`names` checked against `PANEL` (every registered measure when None), in order."""
    if names is None:
        return tuple(PANEL)
    names = tuple(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"name each panel measure once, got {', '.join(names) or 'none'}")
    for name in names:
        PANEL[name]  # an unknown name raises, listing the known ones
    return names


def score(cohort: Cohort, real: RealPanel, names: Sequence[str] | None = None) -> dict:
    """Every measure of `names` (all when None) on `cohort`: one flat dict of numbers."""
    out: dict = {}
    for name in measure_names(names):
        numbers = PANEL[name].compute(cohort, real)
        if name not in numbers:
            raise ValueError(f"panel measure {name!r} returned no {name!r} key")
        out.update({k: _number(v) if isinstance(v, float | np.floating) else v
                    for k, v in numbers.items()})
    return out
