"""Genotype files in: VCF/BCF (cyvcf2) and PLINK .bed (bed-reader). Writing: `data.writers`;
panels and gene BEDs: `data.tables`.

Everything is read into an int8 dosage matrix [N, S] (ALT allele count) with a variant table and
sample ids; a VCF read with `haplotypes=True` also keeps each call's two alleles (phase codes
2 a + b, from which `Genotypes.haplotypes` gives int8 [N, 2, S]). Reading works in chunks of
variants so memory stays near N x S bytes. Site policies, each counted: multi-allelic records and
indels/MNPs are skipped, monomorphic sites dropped, missing calls filled with the per-variant mode
(or an `InputError` under `strict`). Call policies (VCF, `read_vcf`): an allele index beyond the
site's two alleles is an `InputError`; a haploid call `a` is read as `a/a` on X, Y and MT
(`HAPLOID_CHROMOSOMES`, counted) and is an `InputError` anywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.data.calls import (  # noqa: F401  (the types every reader returns, re-exported)
    MISSING,
    ChunkCleaner,
    Genotypes,
    SiteCounts,
    Variants,
    is_snp,
    one_line,
)
from genodiff_jax.data.vcf import HAPLOID_CHROMOSOMES, read_vcf  # noqa: F401
from genodiff_jax.errors import InputError, require_file


def read_plink(path: str | os.PathLike, *, strict: bool = False, chunk_size: int = 16384,
               progress: bool = True) -> Genotypes:
    """Read PLINK .bed/.bim/.fam (path to the .bed or the common prefix);
    dosage = count of allele 1."""
    from bed_reader import open_bed

    path = Path(path)
    bed_path = path if path.suffix == ".bed" else path.with_suffix(path.suffix + ".bed")
    for p in (bed_path, bed_path.with_suffix(".bim"), bed_path.with_suffix(".fam")):
        require_file(p)
    try:
        bed = open_bed(bed_path, count_A1=True)
        samples = np.asarray(bed.iid, dtype=str)
        chrom, pos = np.asarray(bed.chromosome, dtype=str), np.asarray(bed.bp_position, np.int64)
        sid = np.asarray(bed.sid, dtype=str)
        alt, ref = np.asarray(bed.allele_1, dtype=str), np.asarray(bed.allele_2, dtype=str)
    except Exception as e:
        raise InputError(bed_path, f"not a readable PLINK file set ({one_line(e)})") from None
    cleaner = ChunkCleaner(bed_path, len(samples), chunk_size, strict, missing_code=-127)
    cleaner.counts.n_records = len(sid)
    snp = np.array([is_snp(r, a) for r, a in zip(ref, alt)], dtype=bool)
    cleaner.counts.n_indel = int((~snp).sum())
    snp_index = np.flatnonzero(snp)
    with bed:
        for start in tqdm(range(0, len(snp_index), chunk_size), desc=f"reading {bed_path.name}",
                          disable=not progress, leave=False):
            idx = snp_index[start:start + chunk_size]
            try:
                block = bed.read(index=np.s_[:, idx], dtype="int8", order="C")
            except Exception as e:
                raise InputError(bed_path, f"malformed .bed data ({one_line(e)})") from None
            cleaner.add_block(block, Variants(chrom[idx], pos[idx], sid[idx], ref[idx], alt[idx]))
    return cleaner.finish(samples)


# Readers by file suffix: a new format is one function and one entry here.
GENOTYPE_READERS: dict[str, Callable[..., Genotypes]] = {
    ".vcf": read_vcf, ".vcf.gz": read_vcf, ".vcf.bgz": read_vcf, ".bcf": read_vcf,
    ".bed": read_plink,
}


def reader_for(path: str | os.PathLike) -> Callable[..., Genotypes]:
    """The reader that the file's suffix names."""
    if Path(path).is_dir():
        require_file(path)  # says it is a directory, whatever its name
    name = Path(path).name.lower()
    for suffix in sorted(GENOTYPE_READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return GENOTYPE_READERS[suffix]
    raise InputError(path, f"unknown genotype format (expected one of "
                           f"{', '.join(GENOTYPE_READERS)})")


def read_genotypes(path: str | os.PathLike, **kwargs) -> Genotypes:
    """Read genotypes with the reader that the file's suffix names."""
    return reader_for(path)(path, **kwargs)
