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

import contextlib
import dataclasses
import mmap
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.errors import InputError, require_file

MISSING = -1
_NUCLEOTIDES = frozenset("ACGT")
# Chromosomes where haploid calls are expected (male X and Y, mitochondria), by every usual name.
HAPLOID_CHROMOSOMES = frozenset({"X", "Y", "MT", "M", "chrX", "chrY", "chrM", "chrMT",
                                 "23", "24", "25", "26"})
_VECTOR_END = -2  # cyvcf2's allele index past a call's last allele (a haploid call's 2nd)
_DECODE_BLOCK = 256  # VCF records whose raw calls are checked and converted at once
_GZIP_MAGIC = b"\x1f\x8b"  # bgzip (and BCF) files are gzip streams


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


class _ChunkCleaner:
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


def _is_snp(ref: str, alt: str) -> bool:
    return len(ref) == 1 and len(alt) == 1 and ref in _NUCLEOTIDES and alt in _NUCLEOTIDES


class _VcfCalls:
    """The raw calls of biallelic SNP records, checked and converted a block of records at a time
    (per record only a copy): to dosages a + b, or to phase codes 2 a + b, MISSING where an allele
    is missing. Policies: see `read_vcf`."""

    def __init__(self, path: Path, samples: np.ndarray, cleaner: _ChunkCleaner, codes: bool,
                 block: int = _DECODE_BLOCK):
        self.path, self.samples, self.cleaner, self.codes = path, samples, cleaner, codes
        # cyvcf2's layout: allele, allele (MISSING for '.', _VECTOR_END past a haploid call's
        # only allele), phased flag.
        self.raw = np.empty((block, len(samples), 3), np.int16)
        self.sites: list[tuple] = []
        self.n_unphased = 0

    def add(self, gt: np.ndarray, site: tuple) -> None:
        """One record: `gt` int16 [N, ploidy + 1] from cyvcf2, `site` (chrom, pos, id, ref, alt)."""
        j = len(self.sites)
        if gt.shape[1] == 3:
            self.raw[j] = gt
        elif gt.shape[1] == 2:  # every call of the record is haploid
            self.raw[j, :, 0] = gt[:, 0]
            self.raw[j, :, 1] = _VECTOR_END
            self.raw[j, :, 2] = 1
        else:
            i = int(np.argmax(gt[:, 2] != _VECTOR_END))
            raise InputError(self.path, f"record {site[0]}:{site[1]}, sample {self.samples[i]}: "
                                        f"a call of ploidy {gt.shape[1] - 1}; only diploid calls "
                                        "(and haploid ones on X, Y and MT) are read")
        self.sites.append(site)
        if j + 1 == len(self.raw):
            self.flush()

    def flush(self) -> None:
        n = len(self.sites)
        if n == 0:
            return
        raw = self.raw[:n]
        a, b = raw[..., 0], raw[..., 1]
        beyond = (a > 1) | (b > 1)
        if beyond.any():
            j, i = np.unravel_index(np.argmax(beyond), beyond.shape)
            raise InputError(self.path, f"{self._where(j, i)}: allele index "
                                        f"{max(a[j, i], b[j, i])} but the site has 2 alleles")
        # One called allele: '.' alone is a missing call (whatever the ploidy), not a haploid one.
        haploid = (b == _VECTOR_END) & (a >= 0)
        n_haploid = int(haploid.sum())
        if n_haploid:
            allowed = np.array([site[0] in HAPLOID_CHROMOSOMES for site in self.sites])
            wrong = haploid & ~allowed[:, None]
            if wrong.any():
                j, i = np.unravel_index(np.argmax(wrong), wrong.shape)
                raise InputError(self.path, f"{self._where(j, i)}: haploid call on chromosome "
                                            f"{self.sites[j][0]} (read as homozygous only on X, "
                                            "Y and MT)")
            b = np.where(haploid, a, b)
            self.cleaner.counts.n_haploid += n_haploid
        # A haploid call has no phase to lose: it counts as phased; nor has a no-call (`./.`, read
        # as missing whatever its separator).
        self.n_unphased += int(np.count_nonzero((raw[..., 2] == 0) & (raw[..., 0] >= 0)
                                                & (raw[..., 1] >= 0)))
        values = 2 * a + b if self.codes else a + b
        values[(a < 0) | (b < 0)] = MISSING
        self.cleaner.add_rows(values.astype(np.int8), self.sites)
        self.sites = []

    def _where(self, j: int, i: int) -> str:
        return f"record {self.sites[j][0]}:{self.sites[j][1]}, sample {self.samples[i]}"


def read_vcf(path: str | os.PathLike, *, strict: bool = False, chunk_size: int = 4096,
             progress: bool = True, drop_monomorphic: bool = True,
             haplotypes: bool = False, keep_missing: bool = False) -> Genotypes:
    """Read a VCF/BCF (plain or bgzipped) into dosages; see the module docstring for site policies.
    `haplotypes` also keeps both alleles of every call (`Genotypes.haplotypes`); `keep_missing`
    (with `haplotypes`) leaves no-calls as MISSING instead of filling them.

    Calls at the biallelic SNPs kept, each an `InputError` naming the record and the sample when
    broken: an allele index above 1 (`0/3`); a haploid call (`1`) outside X, Y and MT
    (`HAPLOID_CHROMOSOMES`); a ploidy above 2. On X, Y and MT a haploid call `a` is read as the
    homozygous `a/a` (dosage 0 or 2, both haplotype tokens `a`, phased), counted in
    `counts.n_haploid`. A call with a missing allele (`./.`, `.`, `./1`) is missing. A truncated
    or corrupt bgzip file is an `InputError` saying so."""
    from cyvcf2 import VCF

    path = Path(path)
    require_file(path)
    with _c_stderr_captured() as htslib:
        try:
            vcf = VCF(str(path), lazy=True, threads=min(2, os.cpu_count() or 1))
        except Exception as e:  # cyvcf2 raises bare Exceptions/OSErrors with htslib's text
            if _broken_compression(path, htslib, e):
                raise InputError(path, "truncated or corrupt compressed file") from None
            raise InputError(path, "not a readable VCF/BCF "
                                   f"({htslib.text() or _one_line(e)})") from None
        samples = np.array(vcf.samples, dtype=str)
        if samples.size == 0:
            raise InputError(path, "VCF has no samples")
        cleaner = _ChunkCleaner(path, len(samples), chunk_size, strict,
                                drop_monomorphic=drop_monomorphic, phase_codes=haplotypes,
                                keep_missing=keep_missing and haplotypes)
        calls = _VcfCalls(path, samples, cleaner, codes=haplotypes)
        counts = cleaner.counts
        last = "the header"
        bar = tqdm(desc=f"reading {path.name}", unit=" variants", disable=not progress, leave=False,
                   file=htslib.terminal)
        try:
            for record in vcf:
                counts.n_records += 1
                bar.update()
                last = f"{record.CHROM}:{record.POS}"
                alts = record.ALT
                if len(alts) > 1:
                    counts.n_multiallelic += 1
                    continue
                if len(alts) == 0:  # ALT "." : no alternative allele at all
                    counts.n_monomorphic += 1
                    continue
                if not _is_snp(record.REF, alts[0]):
                    counts.n_indel += 1
                    continue
                calls.add(record.genotype.array(),
                          (record.CHROM, record.POS, record.ID or ".", record.REF, alts[0]))
            calls.flush()
        except InputError:
            raise
        except Exception as e:
            if _broken_compression(path, htslib, e):
                raise InputError(path, "truncated or corrupt compressed file") from None
            raise InputError(path, f"malformed VCF record after {last}: "
                                   f"{htslib.errors() or _one_line(e)}") from None
        finally:
            bar.close()
            vcf.close()
    genotypes = cleaner.finish(samples)
    genotypes.phased = haplotypes and calls.n_unphased == 0
    return genotypes


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
        raise InputError(bed_path, f"not a readable PLINK file set ({_one_line(e)})") from None
    cleaner = _ChunkCleaner(bed_path, len(samples), chunk_size, strict, missing_code=-127)
    cleaner.counts.n_records = len(sid)
    snp = np.array([_is_snp(r, a) for r, a in zip(ref, alt)], dtype=bool)
    cleaner.counts.n_indel = int((~snp).sum())
    snp_index = np.flatnonzero(snp)
    with bed:
        for start in tqdm(range(0, len(snp_index), chunk_size), desc=f"reading {bed_path.name}",
                          disable=not progress, leave=False):
            idx = snp_index[start:start + chunk_size]
            try:
                block = bed.read(index=np.s_[:, idx], dtype="int8", order="C")
            except Exception as e:
                raise InputError(bed_path, f"malformed .bed data ({_one_line(e)})") from None
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


class _CapturedStderr:
    """What C code (htslib) wrote to file descriptor 2, and a handle on the real terminal."""

    def __init__(self, sink, terminal):
        self._sink, self.terminal = sink, terminal

    def text(self) -> str:
        self._sink.seek(0)
        lines = self._sink.read().decode(errors="replace").splitlines()
        return " ".join(" ".join(lines).split())

    def errors(self) -> str:
        """htslib's error lines only ([E::...]), without its warnings."""
        self._sink.seek(0)
        lines = self._sink.read().decode(errors="replace").splitlines()
        return " ".join(line.strip() for line in lines if line.startswith("[E::"))


@contextlib.contextmanager
def _c_stderr_captured() -> Iterator[_CapturedStderr]:
    """Collect htslib's messages (it writes them straight to fd 2) so that a bad file ends in one
    clean line naming the file; progress bars keep writing to the real terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, os.fdopen(os.dup(saved), "w") as terminal:
        os.dup2(sink.fileno(), 2)
        try:
            yield _CapturedStderr(sink, terminal)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _broken_compression(path: Path, htslib: _CapturedStderr, e: BaseException) -> bool:
    """Whether a failed read of a gzip-compressed file (bgzipped VCF, BCF) is the compression's
    fault: htslib names its bgzf/gzip layer or a missing end-of-file marker, or gives no reason
    at all (a bgzip block cut short fails with only cyvcf2's `error-code: 0 and ret: -2`)."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != _GZIP_MAGIC:
                return False
    except OSError:  # unreadable: the caller's message says what htslib saw
        return False
    text = htslib.text()
    return (not htslib.errors() and "ret: -2" in str(e)) or any(
        word in text for word in ("EOF marker is absent", "[E::bgzf", "[E::inflate"))


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
