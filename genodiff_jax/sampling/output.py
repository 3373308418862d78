"""A synthetic cohort on disk, whichever family made it: one writer for every family.

A cohort folder (marker kind "synthetic") holds `synthetic.vcf.gz` (the dataset's variant table,
samples SYN000001..., phased calls from haplotypes [N, 2, S] or unphased ones from genotype calls
[N, S]), `synthetic.panel` (sample + the dataset's label column), `features.npz` when the family
samples features (features with padded slots zeroed, labels, samples, class_names), with
`OutputSettings.plink` `synthetic.bed/.bim/.fam` and with `pgen` `synthetic.pgen/.pvar/.psam`
(the label as a .psam column). It is written into a temporary folder renamed at the end
(`atomic.atomic_dir`): an interrupted write leaves the earlier cohort as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_dir
from genodiff_jax.data import io, tables, writers
from genodiff_jax.sampling.settings import OutputSettings

SYNTHETIC_VCF = "synthetic.vcf.gz"
SYNTHETIC_KIND = "synthetic"  # the marker kind of a synthetic cohort folder
SYNTHETIC_PANEL = "synthetic.panel"
SYNTHETIC_FEATURES = "features.npz"
SYNTHETIC_PLINK = "synthetic"  # prefix of .bed/.bim/.fam and .pgen/.pvar/.psam


@dataclasses.dataclass(frozen=True)
class CohortTable:
    """What a cohort's files take from its dataset: the variants, the class names, the panel's
    label column and the dataset fingerprint (written into the folder's marker)."""

    variants: io.Variants
    class_names: Sequence[str]
    label_column: str
    dataset: str | None = None

    @classmethod
    def of(cls, data) -> CohortTable:
        """The table of a prepared dataset (`data.loader.PreparedDataset`)."""
        return cls(data.variants, data.class_names, data.summary["label"], data.fingerprint)


def sample_ids(n: int) -> list[str]:
    """SYN000001, SYN000002, ... (wider when n needs more digits)."""
    width = max(6, len(str(n)))
    return [f"SYN{i:0{width}d}" for i in range(1, n + 1)]


def write_cohort(output: OutputSettings, table: CohortTable, labels: np.ndarray,
                 genotypes: np.ndarray, features: np.ndarray | None = None) -> dict:
    """Write the cohort of `labels` [N] with `genotypes` (int8 haplotypes [N, 2, S], or calls
    [N, S] in {0, 1, 2}) and, for a feature family, its `features` (see the module docstring).
    Returns {"n_samples", "n_variants", "phased", "files"}."""
    genotypes = np.asarray(genotypes, np.int8)
    labels = np.asarray(labels, np.int32)
    phased = genotypes.ndim == 3
    if genotypes.shape[0] != labels.shape[0]:
        raise ValueError(f"{genotypes.shape[0]} genotype rows but {labels.shape[0]} labels")
    if genotypes.shape[-1] != len(table.variants):
        raise ValueError(f"{genotypes.shape[-1]} genotype columns, but the dataset has "
                         f"{len(table.variants)} variants")
    if labels.size and (labels.min() < 0 or labels.max() >= len(table.class_names)):
        raise ValueError(f"labels must lie in [0, {len(table.class_names)})")
    calls = genotypes.sum(axis=1, dtype=np.int8) if phased else genotypes
    vcf_genotypes = genotypes.transpose(0, 2, 1) if phased else calls
    samples = sample_ids(len(labels))
    names = np.asarray([str(c) for c in table.class_names])
    files = [SYNTHETIC_VCF, SYNTHETIC_PANEL]
    with atomic_dir(output.path, SYNTHETIC_KIND, inputs=output.inputs,
                    overwrite=output.overwrite, dataset=table.dataset) as tmp:
        tmp = Path(tmp)
        writers.write_vcf(tmp / SYNTHETIC_VCF, table.variants, samples, vcf_genotypes,
                          phased=phased)
        tables.write_panel(tmp / SYNTHETIC_PANEL, samples, {table.label_column: names[labels]})
        if features is not None:
            with open(tmp / SYNTHETIC_FEATURES, "wb") as fh:
                np.savez(fh, features=np.asarray(features, np.float32), labels=labels,
                         samples=np.asarray(samples), class_names=names)
            files.append(SYNTHETIC_FEATURES)
        if output.plink:
            writers.write_plink(tmp / SYNTHETIC_PLINK, table.variants, samples, calls)
            files += [SYNTHETIC_PLINK + suffix for suffix in (".bed", ".bim", ".fam")]
        if output.pgen:
            writers.write_pgen(tmp / SYNTHETIC_PLINK, table.variants, samples, vcf_genotypes,
                               phased=phased, sample_columns={table.label_column: names[labels]})
            files += [SYNTHETIC_PLINK + suffix for suffix in (".pgen", ".pvar", ".psam")]
    return {"n_samples": len(labels), "n_variants": len(table.variants), "phased": phased,
            "files": files}
