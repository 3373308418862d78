"""`genodiff impute`: fill missing genotypes with a trained masked-diffusion model.

The people of a VCF are aligned to the run's variant table by chromosome, position and alleles
(`match_sites`): a record with the model's REF and ALT is used as it is, one with them swapped is
read flipped, one with other alleles is skipped (counted; the model fills the site), and a VCF with
no site in common is an error. Observed alleles are clamped and everything else (no-calls `.|.` or
`./.`, sites the VCF lacks or that were skipped, and sites listed in `mask_sites`) is generated
by the same window-by-window sampler as `genodiff sample` (`sampling.tokens`), with the run
config's sampling settings (`imputation_settings`; `--steps` overrides). With `draws` > 1
the imputed dosage is the mean over independent draws (the model's posterior mean, what imputation
accuracy is measured on); the written genotypes are the first draw's, so they stay phased and
consistent within each haplotype.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np

from genodiff_jax.atomic import atomic_dir, check_output
from genodiff_jax.data import io, tables, writers
from genodiff_jax.data.loader import load_prepared
from genodiff_jax.data.views import token_plan
from genodiff_jax.errors import InputError, require_file
from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings, resolve_sampling
from genodiff_jax.sampling.tokens import UNKNOWN, generate_tokens

IMPUTED_VCF = "imputed.vcf.gz"
IMPUTED_DOSAGES = "dosages.npz"
IMPUTED_KIND = "imputed"
IMPUTED_SUMMARY = "summary.json"


MAX_DRAWS = 1000  # each draw is one whole sampling pass over the people


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


def impute_tokens(trained, data, known: np.ndarray, labels: np.ndarray,
                  settings: SamplingSettings, *, draws: int = 1,
                  progress: bool = False) -> np.ndarray:
    """`draws` independent fillings of `known` (int8 [draws, N, 2, S]) with `settings` (as
    `imputation_settings` resolves them)."""
    plan = token_plan(data, trained.process, trained.model)
    out = [generate_tokens(trained, data, labels, plan, settings, known=known, progress=progress,
                           key=jax.random.fold_in(settings.key, d))
           for d in range(draws)]
    return np.stack(out)


def imputation_settings(trained, asked: SamplingSettings = SamplingSettings()) -> SamplingSettings:
    """The run config's sampling settings (sampler, steps, guidance, options) where `asked` says
    None, checked (`settings.resolve_sampling`)."""
    from genodiff_jax.train.config import sampling_defaults

    return resolve_sampling(trained.process, sampling_defaults(trained.config), asked)


def impute_vcf(workdir: str | os.PathLike, vcf: str | os.PathLike, output: OutputSettings, *,
               panel: str | os.PathLike | None = None, mask_sites: str | os.PathLike | None = None,
               draws: int = 1, sampling: SamplingSettings = SamplingSettings(),
               progress: bool = True) -> dict:
    """Impute the people of `vcf` with the run in `workdir`, sampled with the run config's
    settings where `sampling` leaves them None; write `imputed.vcf.gz` (phased, the run's variant
    table), `dosages.npz` (mean dosage over draws) and `summary.json` (what is returned: the
    sites matched, flipped, skipped, absent and masked, the alleles filled) into `output.path`
    (an earlier imputation is replaced; anything else only with `overwrite`, never an input)."""
    from genodiff_jax.train.trained import load_trained

    inputs = (workdir, vcf, panel, mask_sites)
    out, overwrite = output.path, output.overwrite
    if not 1 <= draws <= MAX_DRAWS:
        raise InputError(None, f"--draws must be in [1, {MAX_DRAWS}], got {draws}")
    for given in (panel, mask_sites):
        if given is not None:
            require_file(given)
    check_output(out, IMPUTED_KIND, inputs=inputs, overwrite=overwrite)
    trained = load_trained(workdir)
    if getattr(trained.process, "tokens", None) != "haplotypes":
        raise InputError(workdir, "imputation needs a masked-diffusion run on haplotypes")
    settings = imputation_settings(trained, sampling)
    data = load_prepared(trained.run["data_dir"])
    genotypes = io.read_vcf(vcf, haplotypes=True, keep_missing=True, drop_monomorphic=False,
                            progress=progress)
    if not genotypes.phased:
        raise InputError(vcf, "the haplotype model imputes phased calls (a|b); some are unphased")
    match = match_sites(genotypes.variants, data.variants)
    if match.n_matched + match.n_flipped == 0:
        raise InputError(vcf, f"no site in common with the model's {len(data.variants.pos)} "
                              f"sites (same chromosome, position and alleles; "
                              f"{match.n_other_alleles} at a model position with other alleles, "
                              f"{match.n_not_in_model} elsewhere): every allele would be made up")
    known = known_tokens(genotypes, data.variants, match)
    n_masked = 0
    if mask_sites is not None:
        sites = Path(mask_sites).read_text(errors="replace").split()
        known = hide_sites(known, data.variants, sites, mask_sites)
        n_masked = len(set(sites))
    labels = _labels(genotypes.samples, panel, data, trained.num_classes)
    filled = impute_tokens(trained, data, known, labels, settings, draws=draws,
                           progress=progress)
    dosages = filled.sum(axis=2).mean(axis=0).astype(np.float32)  # [N, S]
    summary = {"n_samples": int(len(labels)), "n_variants": int(known.shape[2]),
               "sites": {"matched": match.n_matched, "flipped": match.n_flipped,
                         "skipped_other_alleles": match.n_other_alleles,
                         "absent": match.n_absent, "masked": n_masked,
                         "vcf_sites_not_in_model": match.n_not_in_model},
               "n_observed_alleles": int((known != UNKNOWN).sum()),
               "n_imputed_alleles": int((known == UNKNOWN).sum()), "draws": draws,
               "files": [IMPUTED_VCF, IMPUTED_DOSAGES, IMPUTED_SUMMARY]}
    with atomic_dir(out, IMPUTED_KIND, inputs=inputs, overwrite=overwrite,
                    dataset=data.fingerprint) as tmp:
        writers.write_vcf(Path(tmp) / IMPUTED_VCF, data.variants, genotypes.samples,
                          filled[0].transpose(0, 2, 1), phased=True)
        with open(Path(tmp) / IMPUTED_DOSAGES, "wb") as f:
            np.savez(f, dosages=dosages, samples=genotypes.samples)
        (Path(tmp) / IMPUTED_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(summary: dict) -> str:
    """One line: how the VCF's sites were used and how many alleles were filled."""
    s = summary["sites"]
    return (f"{s['matched']} sites matched, {s['flipped']} flipped (REF/ALT swapped), "
            f"{s['skipped_other_alleles']} skipped (other alleles), {s['absent']} absent from the "
            f"VCF, {s['masked']} masked; {s['vcf_sites_not_in_model']} VCF sites not in the model; "
            f"{summary['n_imputed_alleles']} of "
            f"{summary['n_imputed_alleles'] + summary['n_observed_alleles']} alleles filled")


def _labels(samples: np.ndarray, panel, data, num_classes: int) -> np.ndarray:
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
