"""`genodiff impute`: a VCF's missing genotypes filled by a trained token-family run
(`sampling.impute` aligns the VCF and fills; the run's family adds its own inputs, e.g. the panel
family's reference rows closest to each person)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_dir, check_output
from genodiff_jax.data import writers
from genodiff_jax.data.loader import load_prepared
from genodiff_jax.data.vcf import vcf_samples
from genodiff_jax.errors import InputError, require_file
from genodiff_jax.families import family_of
from genodiff_jax.sampling.impute import (
    DOSAGES,
    UNKNOWN,
    check_panel_request,
    estimated_r2,
    hide_sites,
    imputation_settings,
    impute_tokens,
    labels_of,
    read_aligned,
)
from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings

IMPUTED_VCF = "imputed.vcf.gz"
IMPUTED_DOSAGES = "dosages.npz"
IMPUTED_KIND = "imputed"
IMPUTED_SUMMARY = "summary.json"
MAX_DRAWS = 1000  # each draw is one whole sampling pass over the people
# The imputed VCF's INFO fields, as Beagle writes them.
IMPUTED_INFO = (
    '##INFO=<ID=DR2,Number=A,Type=Float,Description="Dosage R-squared: estimated squared '
    'correlation between estimated and true ALT dose">',
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Estimated ALT allele frequency">',
    '##INFO=<ID=IMP,Number=0,Type=Flag,Description="Imputed: observed in no one">')


def imputed_info(haplotype_dosages: np.ndarray, known: np.ndarray) -> list[str]:
    """The INFO string of each site [S]: DR2 (`sampling.impute.estimated_r2`), AF (the mean
    haplotype dosage) and IMP where no allele was observed (`known` int8 [N, 2, S])."""
    r2 = estimated_r2(haplotype_dosages)
    af = np.asarray(haplotype_dosages, np.float64).mean(axis=(0, 1))
    seen = (known != UNKNOWN).any(axis=(0, 1))
    return [f"DR2={r:.3f};AF={f:.4g}" + ("" if s else ";IMP") for r, f, s in zip(r2, af, seen)]


def impute_vcf(workdir: str | os.PathLike, vcf: str | os.PathLike, output: OutputSettings, *,
               panel: str | os.PathLike | None = None, mask_sites: str | os.PathLike | None = None,
               draws: int = 1, dosage: str = "posterior",
               sampling: SamplingSettings = SamplingSettings(), progress: bool = True) -> dict:
    """Impute the people of `vcf` with the run in `workdir`, sampled with the run config's
    settings where `sampling` leaves them None; write `imputed.vcf.gz` (phased, the run's variant
    table; GT the first of `draws` fillings, FORMAT/DS the dosage `dosage` names,
    `sampling.impute.DOSAGES`, INFO DR2 / AF / IMP as Beagle writes them: `imputed_info`),
    `dosages.npz` (the same dosages, and each haplotype's) and `summary.json` (what is
    returned: the sites matched, flipped, skipped, absent and masked, the alleles filled) into
    `output.path` (an earlier imputation is replaced; anything else only with `overwrite`, never
    an input).
    `sampling.reference`: a phased VCF whose haplotypes a family that reads a panel copies from
    instead of the run's training split (`sampling.impute.reference_tokens`)."""
    from genodiff_jax.train.trained import load_trained

    reference = sampling.reference
    inputs = (workdir, vcf, panel, mask_sites, reference)
    out, overwrite = output.path, output.overwrite
    if not 1 <= draws <= MAX_DRAWS:
        raise InputError(None, f"--draws must be in [1, {MAX_DRAWS}], got {draws}")
    if dosage not in DOSAGES:
        raise InputError(None, f"--dosage must be one of {', '.join(DOSAGES)}, got {dosage!r}")
    if draws > 1 and dosage != "draws":
        raise InputError(None, f"--draws {draws} fills the people {draws} times for the 'draws' "
                         f"dosage; the VCF holds the first filling and the {dosage!r} dosage "
                         "reads none (add --dosage draws, or leave --draws at 1)")
    for given in (panel, mask_sites):
        if given is not None:
            require_file(given)
    check_output(out, IMPUTED_KIND, inputs=inputs, overwrite=overwrite)
    trained = load_trained(workdir)
    family = family_of(trained.process)
    if getattr(trained.process, "tokens", None) != "haplotypes" or not hasattr(family, "inputs"):
        raise InputError(workdir, "imputation needs a masked-diffusion run on haplotypes")
    check_panel_request(family, sampling)
    settings = imputation_settings(trained, sampling)
    data = load_prepared(trained.run["data_dir"])
    genotypes, match, known = read_aligned(
        vcf, data.variants, "the haplotype model imputes phased calls (a|b); some are unphased",
        progress=progress)
    n_masked = 0
    if mask_sites is not None:
        sites = Path(mask_sites).read_text(errors="replace").split()
        known = hide_sites(known, data.variants, sites, mask_sites)
        n_masked = len(set(sites))
    labels = labels_of(genotypes.samples, panel, data, trained.num_classes)
    per_snp = family.inputs(trained, data, labels, settings, known)
    filled, haplotype_dosages = impute_tokens(trained, data, known, labels, settings,
                                              draws=draws, dosage=dosage, progress=progress,
                                              per_snp=per_snp)
    dosages = haplotype_dosages.sum(axis=1)
    summary = {"n_samples": int(len(labels)), "n_variants": int(known.shape[2]),
               "sites": {"matched": match.n_matched, "flipped": match.n_flipped,
                         "skipped_other_alleles": match.n_other_alleles,
                         "absent": match.n_absent, "masked": n_masked,
                         "vcf_sites_not_in_model": match.n_not_in_model},
               "n_observed_alleles": int((known != UNKNOWN).sum()),
               "n_imputed_alleles": int((known == UNKNOWN).sum()), "draws": draws,
               "panel_rows": (int(per_snp["panel"].shape[1]) if "panel" in per_snp else None),
               "dosage": dosage,
               "reference": (None if reference is None else
                             {"vcf": str(reference),
                              "haplotypes": 2 * len(vcf_samples(reference))}),
               "files": [IMPUTED_VCF, IMPUTED_DOSAGES, IMPUTED_SUMMARY]}
    with atomic_dir(out, IMPUTED_KIND, inputs=inputs, overwrite=overwrite,
                    dataset=data.fingerprint) as tmp:
        writers.write_vcf(Path(tmp) / IMPUTED_VCF, data.variants, genotypes.samples,
                          filled[0].transpose(0, 2, 1), phased=True, dosage=dosages,
                          info=imputed_info(haplotype_dosages, known), meta=IMPUTED_INFO)
        with open(Path(tmp) / IMPUTED_DOSAGES, "wb") as f:
            np.savez(f, dosages=dosages, haplotype_dosages=haplotype_dosages,
                     samples=genotypes.samples)
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
