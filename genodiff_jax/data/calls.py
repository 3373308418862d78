"""What every genotype reader fills: the variant table, the site counts, the genotypes (int8
dosages [N, S], optionally phase codes) and the cleaner that applies the site policies chunk by
chunk (see `data.io`)."""

from __future__ import annotations

import dataclasses
import mmap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.errors import InputError

MISSING = -1
NUCLEOTIDES = frozenset("ACGT")


@dataclasses.dataclass(frozen=True)
class Variants:
    """One row per variant: chromosome, 1-based position, id, REF and ALT."""

    chrom: np.ndarray
    pos: np.ndarray
    id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)

    def take(self, index) -> Variants:
        return Variants(*(np.asarray(getattr(self, f.name))[index]
                          for f in dataclasses.fields(self)))

    @classmethod
    def concat(cls, parts: Sequence[Variants]) -> Variants:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts])
                     for f in dataclasses.fields(cls)))

    @classmethod
    def empty(cls) -> Variants:
        return cls(np.array([], str), np.array([], np.int64), np.array([], str), np.array([], str),
                   np.array([], str))

    def to_dict(self) -> dict[str, np.ndarray]:
        return {f.name: np.asarray(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass
class SiteCounts:
    """What happened to each record of the input; the four site counts add up to `n_records`."""

    n_records: int = 0
    n_used: int = 0
    n_multiallelic: int = 0
    n_indel: int = 0
    n_monomorphic: int = 0
    n_missing_filled: int = 0  # calls, not sites
    n_haploid: int = 0  # haploid calls on X/Y/MT read as homozygous (calls)

    @property
    def n_skipped(self) -> int:
        return self.n_multiallelic + self.n_indel + self.n_monomorphic


@dataclasses.dataclass
class Genotypes:
    """Dosages int8 [N, S] in {0, 1, 2} (Fortran-ordered: each variant's calls are contiguous),
    the kept variants, the sample ids and the site counts; with phase codes (int8 [N, S],
    2 a + b for alleles a|b) when read with `haplotypes=True`, and whether every call was phased."""

    dosages: np.ndarray
    variants: Variants
    samples: np.ndarray
    counts: SiteCounts
    phase_codes: np.ndarray | None = None
    phased: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.dosages.shape

    def haplotypes(self, rows: np.ndarray | slice = slice(None),
                   columns: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The two alleles of each call, int8 [n, 2, s] for the people `rows` at the variants
        `columns`; MISSING where the call is."""
        if self.phase_codes is None:
            raise ValueError("read with haplotypes=True to keep both alleles")
        codes = self.phase_codes[rows][:, columns]
        haps = np.empty((codes.shape[0], 2, codes.shape[1]), np.int8)
        np.right_shift(codes, 1, out=haps[:, 0])
        np.bitwise_and(codes, 1, out=haps[:, 1])
        haps[np.broadcast_to((codes < 0)[:, None], haps.shape)] = MISSING
        return haps


class ChunkCleaner:
    """Collects raw variants (`missing_code` for no call),
    fills, drops monomorphic sites, counts."""

    def __init__(self, path: Path, n_samples: int, chunk_size: int, strict: bool,
                 missing_code: int = MISSING, drop_monomorphic: bool = True,
                 phase_codes: bool = False, keep_missing: bool = False):
        self.path, self.strict, self.chunk_size = path, strict, chunk_size
        self.drop_monomorphic = drop_monomorphic
        self.missing_code = missing_code
        # Phase codes 2 a + b (0..3) instead of dosages (0..2): what a missing call is filled with
        # and what makes a site monomorphic are decided on the codes' dosages.
        self.values = (0, 1, 2, 3) if phase_codes else (0, 1, 2)
        self.phase_codes = phase_codes
        self.keep_missing = keep_missing  # leave no-calls as MISSING (imputation reads them)
        self.buffer = np.empty((chunk_size, n_samples), np.int8)  # variant-major: rows write fast
        self.fields: list[list] = [[], [], [], [], []]
        self.kept_dosages: list[np.ndarray] = []
        self.kept_variants: list[Variants] = []
        self.counts = SiteCounts()

    def add_rows(self, rows: np.ndarray, sites: Sequence[tuple]) -> None:
        """Records' calls, variant-major [n, N], with their (chrom, pos, id, ref, alt)."""
        done = 0
        while done < len(rows):
            j = len(self.fields[0])
            take = min(self.chunk_size - j, len(rows) - done)
            self.buffer[j:j + take] = rows[done:done + take]
            for column, values in zip(self.fields, zip(*sites[done:done + take])):
                column.extend(values)
            done += take
            if j + take == self.chunk_size:
                self.flush()

    def add_block(self, block: np.ndarray, variants: Variants) -> None:
        """A block of columns at once (PLINK reads whole chunks)."""
        self._clean(block, variants)

    def flush(self) -> None:
        n = len(self.fields[0])
        if n == 0:
            return
        variants = Variants(np.array(self.fields[0], dtype=str), np.array(self.fields[1], np.int64),
                            np.array(self.fields[2], dtype=str),
                            np.array(self.fields[3], dtype=str),
                            np.array(self.fields[4], dtype=str))
        self.fields = [[], [], [], [], []]
        self._clean(self.buffer[:n].T, variants)

    def _clean(self, block: np.ndarray, variants: Variants) -> None:
        missing = block == self.missing_code
        n_missing = int(missing.sum())
        if n_missing and self.keep_missing:
            block = np.where(missing, MISSING, block).astype(np.int8)
        elif n_missing:
            if self.strict:
                j = int(np.argmax(missing.any(axis=0)))
                raise InputError(self.path, f"missing genotype call at {variants.chrom[j]}:"
                                            f"{variants.pos[j]} (strict mode; drop --strict to "
                                            "fill missing calls with the per-variant mode)")
            block = np.array(block)
            tallies = np.stack([(block == v).sum(axis=0) for v in self.values])
            mode = tallies.argmax(axis=0).astype(np.int8)
            block[missing] = np.broadcast_to(mode, block.shape)[missing]
            self.counts.n_missing_filled += n_missing
        dosage = (block >> 1) + (block & 1) if self.phase_codes else block
        polymorphic = (dosage != dosage[:1]).any(axis=0)
        if not self.drop_monomorphic:  # e.g. a synthetic cohort read back against its variant table
            polymorphic[:] = True
        self.counts.n_monomorphic += int((~polymorphic).sum())
        self.counts.n_used += int(polymorphic.sum())
        if polymorphic.any():
            kept = _os_backed_empty((block.shape[0], int(polymorphic.sum())))
            np.compress(polymorphic, block, axis=1, out=kept)
            self.kept_dosages.append(kept)
            self.kept_variants.append(variants.take(polymorphic))

    def finish(self, samples: np.ndarray) -> Genotypes:
        self.flush()
        if self.counts.n_used == 0:
            c = self.counts
            raise InputError(self.path, f"no usable biallelic SNP among {c.n_records} records "
                                        f"({c.n_multiallelic} multi-allelic, {c.n_indel} indels, "
                                        f"{c.n_monomorphic} monomorphic)")
        # Copy chunk by chunk into fresh memory, freeing each chunk as it goes, so the peak stays
        # near N x S (np.concatenate holds 2 N x S). The matrix is filled variant-major, front to
        # back: pages are committed only as they are written even when numpy asks for huge pages
        # (filling [N, S] column blocks would touch every 2 MB page at the first chunk). The
        # result is its transpose: [N, S], Fortran-ordered, each variant's calls contiguous.
        dosages_sn = np.empty((self.counts.n_used, len(samples)), np.int8)
        start = 0
        while self.kept_dosages:
            chunk = self.kept_dosages.pop(0)
            dosages_sn[start:start + chunk.shape[1]] = chunk.T
            start += chunk.shape[1]
            del chunk
        variants = Variants.concat(self.kept_variants)
        if not self.phase_codes:
            return Genotypes(dosages_sn.T, variants, samples, self.counts)
        codes = dosages_sn.T
        return Genotypes(_dosages_of_codes(codes), variants, samples, self.counts,
                         phase_codes=codes)


def _dosages_of_codes(codes_NxS: np.ndarray, block: int = 4096) -> np.ndarray:
    """a + b of phase codes 2 a + b, a block of variants at a time: the peak stays at the two
    matrices (the whole-matrix expression would hold three more N x S temporaries)."""
    dosages = np.empty(codes_NxS.shape, np.int8, order="F")
    for start in range(0, codes_NxS.shape[1], block):
        codes = codes_NxS[:, start:start + block]
        out = dosages[:, start:start + block]
        np.right_shift(codes, 1, out=out)
        out += codes & 1
    return dosages


def _os_backed_empty(shape: tuple[int, int]) -> np.ndarray:
    """An int8 array in its own anonymous mmap, returned to the OS the moment it is freed.

    malloc keeps freed blocks of chunk size in its heap, so chunks freed while being copied into the
    final matrix would still count: the peak would be 2 x N x S instead of about N x S.
    """
    n = max(1, shape[0] * shape[1])
    return np.frombuffer(mmap.mmap(-1, n), dtype=np.int8, count=n).reshape(shape)


def is_snp(ref: str, alt: str) -> bool:
    return len(ref) == 1 and len(alt) == 1 and ref in NUCLEOTIDES and alt in NUCLEOTIDES


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
