"""Filling missing genotypes with a trained token model (`genodiff impute`: `commands.impute`).

The people of a VCF are aligned to the run's variant table by chromosome, position and alleles
(`match_sites`): a record with the model's REF and ALT is used as it is, one with them swapped is
read flipped, one with other alleles is skipped (counted; the model fills the site), and a VCF with
no site in common is an error. Observed alleles are clamped and everything else (no-calls `.|.` or
`./.`, sites the VCF lacks or that were skipped, and sites listed in `mask_sites`) is generated
by the same window-by-window sampler as `genodiff sample` (`sampling.tokens`), with the run
config's sampling settings (`imputation_settings`; `--steps` overrides); the written genotypes
are the first draw's, so they stay phased and consistent within each haplotype.

The imputed dosage, what imputation accuracy is measured on, is one of `DOSAGES`:
- "posterior" (the default): the model's marginal posterior given what is observed, from one
  model call a window with every unobserved allele masked: each allele's expected value, with no
  draw's noise and no earlier draw steering it (the quantity Beagle's DS estimates). On LCT
  (`benchmarks/impute_lct.py`, the panel model) it is both more accurate and ~25x cheaper than
  "draws" with 2 draws of 32 steps;
- "draws": each filled allele's expected value under the distribution it was drawn from,
  averaged over `draws` fillings (Rao-Blackwellised: the drawn alleles' mean without the last
  coin flip's noise, but each later allele conditioned on earlier draws).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import numpy as np

from genodiff_jax.data import io, tables
from genodiff_jax.data.views import token_plan
from genodiff_jax.errors import InputError, require_file
from genodiff_jax.registry import Registry
from genodiff_jax.sampling.settings import SamplingSettings, resolve_sampling
from genodiff_jax.sampling.tokens import UNKNOWN, generate_tokens


@dataclasses.dataclass(frozen=True)
class SiteMatch:
    """Which VCF column each of the model's sites reads (-1: none) and whether its alleles are
    swapped there, with the counts the summary reports."""
    column: np.ndarray  # int [S]
    flipped: np.ndarray  # bool [S]
    n_matched: int  # same chrom, position, REF and ALT
    n_flipped: int  # REF and ALT swapped: read with the alleles exchanged
    n_other_alleles: int  # at a model position with other alleles: skipped (the model fills it)
    n_absent: int  # model sites the VCF lacks: filled
    n_not_in_model: int  # VCF sites at positions the model does not have: ignored


def match_sites(vcf: io.Variants, model: io.Variants) -> SiteMatch:
    """The model's sites found in `vcf` by chromosome, position and alleles: the same REF/ALT, or
    swapped (read flipped); a record with other alleles at the position is not used."""
    at: dict[str, list[int]] = {}
    for j, (c, p) in enumerate(zip(vcf.chrom, vcf.pos)):
        at.setdefault(f"{tables.normalise_chrom(c)}:{p}", []).append(j)
    column = np.full(len(model.pos), -1, np.int64)
    flipped = np.zeros(len(model.pos), bool)
    n_other = n_absent = 0
    used = set()
    for i, (c, p, ref, alt) in enumerate(zip(model.chrom, model.pos, model.ref, model.alt)):
        key = f"{tables.normalise_chrom(c)}:{p}"
        candidates = at.get(key, [])
        used.add(key)
        same = [j for j in candidates if (vcf.ref[j], vcf.alt[j]) == (ref, alt)]
        swapped = [j for j in candidates if (vcf.ref[j], vcf.alt[j]) == (alt, ref)]
        if same:
            column[i] = same[0]
        elif swapped:
            column[i], flipped[i] = swapped[0], True
        elif candidates:
            n_other += 1
        else:
            n_absent += 1
    n_flipped = int(flipped.sum())
    return SiteMatch(column, flipped, int((column >= 0).sum()) - n_flipped, n_flipped, n_other,
                     n_absent, len(set(at) - used))


def known_tokens(genotypes: io.Genotypes, variants: io.Variants,
                 match: SiteMatch | None = None) -> np.ndarray:
    """Observed alleles on the run's variant table, int8 [N, 2, S]; UNKNOWN where not observed
    (`match`: the sites found, `match_sites` by default; swapped sites are read flipped)."""
    match = match_sites(genotypes.variants, variants) if match is None else match
    haps = genotypes.haplotypes()  # MISSING (-1) = UNKNOWN at no-calls
    known = np.full((haps.shape[0], 2, len(match.column)), UNKNOWN, np.int8)
    have = match.column >= 0
    known[:, :, have] = haps[:, :, match.column[have]]
    flip = np.zeros_like(known, bool)
    flip[:, :, match.flipped] = True
    flip &= known >= 0
    known[flip] = 1 - known[flip]
    return known


def read_aligned(vcf, variants: io.Variants, unphased: str, *, progress: bool = False
                 ) -> tuple[io.Genotypes, SiteMatch, np.ndarray]:
    """A phased VCF read and aligned to the run's variant table: its genotypes, the sites found
    (`match_sites`) and its alleles there (`known_tokens`). InputError naming `vcf` when a call
    is unphased (the message `unphased`) or no site is in common with the run."""
    genotypes = io.read_vcf(vcf, haplotypes=True, keep_missing=True, drop_monomorphic=False,
                            progress=progress)
    if not genotypes.phased:
        raise InputError(vcf, unphased)
    match = match_sites(genotypes.variants, variants)
    if match.n_matched + match.n_flipped == 0:
        raise InputError(vcf, f"no site in common with the model's {len(variants.pos)} "
                              f"sites (same chromosome, position and alleles; "
                              f"{match.n_other_alleles} at a model position with other alleles, "
                              f"{match.n_not_in_model} elsewhere): every allele would be made up")
    return genotypes, match, known_tokens(genotypes, variants, match)


def check_panel_request(family, settings: SamplingSettings) -> None:
    """InputError where `settings` asks for a reference panel (`reference`, `panel_size`) of a
    run whose model reads none, or names a VCF that is not there."""
    asked = [flag for flag, value in (("--reference", settings.reference),
                                      ("--panel-size", settings.panel_size)) if value is not None]
    if asked and not getattr(family, "reads_panel", False):
        raise InputError(settings.reference, f"{asked[0]} is for a run whose model reads a "
                         "reference panel (the panel family); this run's does not")
    if settings.reference is not None:
        require_file(settings.reference)


def reference_tokens(vcf, data, *, progress: bool = False) -> np.ndarray:
    """A phased VCF's haplotypes on the run's variant table, int8 [P, 2, S], as a reference
    panel to copy from: sites it lacks (or calls it leaves missing) hold the allele more common
    in the run's training split, so every row is complete (`read_aligned`'s errors otherwise)."""
    _, _, known = read_aligned(vcf, data.variants, "a reference panel needs phased calls (a|b); "
                               "some are unphased", progress=progress)
    common = (np.asarray(data.tokens("train")).mean(axis=(0, 1)) > 0.5).astype(np.int8)
    return np.where(known == UNKNOWN, common, known).astype(np.int8)


def hide_sites(known: np.ndarray, variants: io.Variants, sites: list[str], path) -> np.ndarray:
    """`known` with the sites "chrom:pos" set to UNKNOWN (an unknown site is an InputError)."""
    index = {f"{tables.normalise_chrom(c)}:{p}": j for j, (c, p) in
             enumerate(zip(variants.chrom, variants.pos))}
    columns = []
    for site in sites:
        chrom, _, pos = site.partition(":")
        key = f"{tables.normalise_chrom(chrom)}:{pos}"
        if key not in index:
            raise InputError(path, f"site {site} is not in the model's variant table")
        columns.append(index[key])
    known = known.copy()
    known[:, :, columns] = UNKNOWN
    return known


# name -> f(fill, settings, drawn_means) -> haplotype dosages float32 [N, H, S] (each allele's
# probability of being ALT). `fill(settings, key=None, carry=True)` runs
# `generate_tokens(..., means=True)` for the people being imputed (`carry`: the window plan's);
# `settings` are the fillings' and `drawn_means` the draws' expected values [N, H, S] each.
DOSAGES: Registry[Callable] = Registry("imputed dosage")


@DOSAGES.register("posterior")
def posterior_dosage(fill: Callable, settings: SamplingSettings,
                     drawn_means: list[np.ndarray]) -> np.ndarray:
    """One model call a window from what is observed alone (steps=1, temperature 1; windows do
    not carry each other's draws): p(allele | observed) for every hidden allele at once."""
    del drawn_means
    one_call = dataclasses.replace(settings, sampler="ancestral", steps=1,
                                   options={"temperature": 1.0})
    _, mean = fill(one_call, carry=False)
    return np.asarray(mean, np.float32)


@DOSAGES.register("draws")
def mean_over_draws(fill: Callable, settings: SamplingSettings,
                    drawn_means: list[np.ndarray]) -> np.ndarray:
    """Over the draws, the mean of each allele's expected value where it was drawn."""
    del fill, settings
    if not drawn_means:
        raise ValueError("the 'draws' dosage needs draws >= 1")
    return np.mean(drawn_means, axis=0, dtype=np.float32)


def estimated_r2(haplotype_dosages: np.ndarray) -> np.ndarray:
    """Each site's estimated squared correlation between imputed and true ALT dose, float32 [S]
    from haplotype dosages [N, H, S] (Beagle's DR2, MaCH's Rsq): the variance of the allele
    probabilities over the haplotypes against the variance they would have if each were a sure
    0 or 1 at the same mean; 0 where every probability is 0 or every one 1. Observed alleles
    count as sure, so a site seen in everyone reads 1."""
    p = np.asarray(haplotype_dosages, np.float64)
    p = p.reshape(-1, p.shape[-1])
    mean = p.mean(axis=0)
    binary_variance = mean * (1 - mean)
    variance = (p ** 2).mean(axis=0) - mean ** 2
    r2 = np.divide(variance, binary_variance, out=np.zeros_like(mean),
                   where=binary_variance > 1e-12)
    return np.clip(r2, 0.0, 1.0).astype(np.float32)


def impute_tokens(trained, data, known: np.ndarray, labels: np.ndarray,
                  settings: SamplingSettings, *, draws: int = 1, dosage: str = "posterior",
                  progress: bool = False, per_snp: Mapping[str, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`draws` independent fillings of `known` (int8 [draws, N, 2, S]) with `settings` (as
    `imputation_settings` resolves them), and the imputed haplotype dosages float32 [N, 2, S]
    that `dosage` names (`DOSAGES`; a person's dosage is their sum over axis 1; draws=0
    computes the dosages alone, e.g. for a benchmark). `per_snp`: the family's other inputs
    (`Family.inputs`, e.g. a reference panel)."""
    estimate = DOSAGES[dosage]
    plan = token_plan(data, trained.process, trained.model)

    def fill(settings: SamplingSettings, key: jax.Array | None = None, carry: bool = True):
        return generate_tokens(trained, data, labels, dataclasses.replace(plan, carry=carry),
                               settings, known=known, progress=progress, per_snp=per_snp,
                               means=True, key=key)

    runs = [fill(settings, key=jax.random.fold_in(settings.key, d)) for d in range(draws)]
    filled = np.stack([tokens for tokens, _ in runs]) if runs else np.zeros(
        (0, *known.shape), np.int8)
    return filled, estimate(fill, settings, [mean for _, mean in runs])


def imputation_settings(trained, asked: SamplingSettings = SamplingSettings()) -> SamplingSettings:
    """The run config's sampling settings (sampler, steps, guidance, options) where `asked` says
    None, checked (`settings.resolve_sampling`)."""
    from genodiff_jax.train.config import sampling_defaults

    return resolve_sampling(trained.process, sampling_defaults(trained.config), asked)


def labels_of(samples: np.ndarray, panel, data, num_classes: int) -> np.ndarray:
    """Each person's class from `panel` (the run's label column), or the null label."""
    if panel is None:
        return np.full(len(samples), num_classes, np.int32)
    table = tables.read_panel(panel)
    column = data.summary["label"]
    if column not in table.columns:
        raise InputError(panel, f"no '{column}' column (the run's label)")
    label_of = dict(zip(table.samples, table.columns[column]))
    index = {name: i for i, name in enumerate(data.class_names)}
    missing = [s for s in samples if s not in label_of]
    if missing:
        raise InputError(panel, f"{len(missing)} samples are not in the panel, e.g. {missing[0]}")
    unknown = sorted({label_of[s] for s in samples} - set(index))
    if unknown:
        raise InputError(panel, f"classes the run was not trained on: {', '.join(unknown[:3])}")
    return np.array([index[label_of[s]] for s in samples], np.int32)
