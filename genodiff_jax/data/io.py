"""Genotype files in and out: VCF/BCF (cyvcf2), PLINK .bed (bed-reader), panels and gene BEDs.

Everything is read into an int8 dosage matrix [N, S] (ALT allele count) with a variant table and sample
ids. Reading works in chunks of variants so memory stays near N x S bytes. Site policies, each counted:
multi-allelic records and indels/MNPs are skipped, monomorphic sites dropped, missing calls filled with
the per-variant mode (or an `InputError` under `strict`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import mmap
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.atomic import atomic_dir, atomic_file
from genodiff_jax.errors import InputError

MISSING = -1
_NUCLEOTIDES = frozenset("ACGT")


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
        return Variants(*(np.asarray(getattr(self, f.name))[index] for f in dataclasses.fields(self)))

    @classmethod
    def concat(cls, parts: Sequence[Variants]) -> Variants:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(cls)))

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

    @property
    def n_skipped(self) -> int:
        return self.n_multiallelic + self.n_indel + self.n_monomorphic


@dataclasses.dataclass
class Genotypes:
    """Dosages int8 [N, S] in {0, 1, 2} (Fortran-ordered: each variant's calls are contiguous),
    the kept variants, the sample ids and the site counts."""

    dosages: np.ndarray
    variants: Variants
    samples: np.ndarray
    counts: SiteCounts

    @property
    def shape(self) -> tuple[int, int]:
        return self.dosages.shape


class _ChunkCleaner:
    """Collects raw variants (`missing_code` for no call), fills, drops monomorphic sites, counts."""

    def __init__(self, path: Path, n_samples: int, chunk_size: int, strict: bool,
                 missing_code: int = MISSING, drop_monomorphic: bool = True):
        self.path, self.strict, self.chunk_size = path, strict, chunk_size
        self.drop_monomorphic = drop_monomorphic
        self.missing_code = missing_code
        self.buffer = np.empty((chunk_size, n_samples), np.int8)  # variant-major: rows write fast
        self.fields: list[list] = [[], [], [], [], []]
        self.kept_dosages: list[np.ndarray] = []
        self.kept_variants: list[Variants] = []
        self.counts = SiteCounts()

    def add(self, calls: np.ndarray, chrom: str, pos: int, vid: str, ref: str, alt: str) -> None:
        j = len(self.fields[0])
        self.buffer[j] = calls
        for column, value in zip(self.fields, (chrom, pos, vid, ref, alt)):
            column.append(value)
        if j + 1 == self.chunk_size:
            self.flush()

    def add_block(self, block: np.ndarray, variants: Variants) -> None:
        """A block of columns at once (PLINK reads whole chunks)."""
        self._clean(block, variants)

    def flush(self) -> None:
        n = len(self.fields[0])
        if n == 0:
            return
        variants = Variants(np.array(self.fields[0], dtype=str), np.array(self.fields[1], np.int64),
                            np.array(self.fields[2], dtype=str), np.array(self.fields[3], dtype=str),
                            np.array(self.fields[4], dtype=str))
        self.fields = [[], [], [], [], []]
        self._clean(self.buffer[:n].T, variants)

    def _clean(self, block: np.ndarray, variants: Variants) -> None:
        missing = block == self.missing_code
        n_missing = int(missing.sum())
        if n_missing:
            if self.strict:
                j = int(np.argmax(missing.any(axis=0)))
                raise InputError(self.path, f"missing genotype call at {variants.chrom[j]}:"
                                            f"{variants.pos[j]} (strict mode; drop --strict to fill "
                                            "missing calls with the per-variant mode)")
            block = np.array(block)
            tallies = np.stack([(block == v).sum(axis=0) for v in (0, 1, 2)])
            mode = tallies.argmax(axis=0).astype(np.int8)
            block[missing] = np.broadcast_to(mode, block.shape)[missing]
            self.counts.n_missing_filled += n_missing
        polymorphic = (block != block[:1]).any(axis=0)
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
        dosages = dosages_sn.T
        return Genotypes(dosages, Variants.concat(self.kept_variants), samples, self.counts)


def _os_backed_empty(shape: tuple[int, int]) -> np.ndarray:
    """An int8 array in its own anonymous mmap, returned to the OS the moment it is freed.

    malloc keeps freed blocks of chunk size in its heap, so chunks freed while being copied into the
    final matrix would still count: the peak would be 2 x N x S instead of about N x S.
    """
    n = max(1, shape[0] * shape[1])
    return np.frombuffer(mmap.mmap(-1, n), dtype=np.int8, count=n).reshape(shape)


def _is_snp(ref: str, alt: str) -> bool:
    return len(ref) == 1 and len(alt) == 1 and ref in _NUCLEOTIDES and alt in _NUCLEOTIDES


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(path, "file not found")


def read_vcf(path: str | os.PathLike, *, strict: bool = False, chunk_size: int = 4096,
             progress: bool = True, drop_monomorphic: bool = True) -> Genotypes:
    """Read a VCF/BCF (plain or bgzipped) into dosages; see the module docstring for site policies."""
    from cyvcf2 import VCF

    path = Path(path)
    _require_file(path)
    with _c_stderr_captured() as htslib:
        try:
            vcf = VCF(str(path), gts012=True, lazy=True, threads=min(2, os.cpu_count() or 1))
        except Exception as e:  # cyvcf2 raises bare Exceptions/OSErrors with htslib's text
            raise InputError(path, f"not a readable VCF/BCF ({htslib.text() or _one_line(e)})") from None
        samples = np.array(vcf.samples, dtype=str)
        if samples.size == 0:
            raise InputError(path, "VCF has no samples")
        # gts012: 0/1/2 = ALT count, 3 = no call; mapped per chunk, not per record.
        cleaner = _ChunkCleaner(path, len(samples), chunk_size, strict, missing_code=3,
                                drop_monomorphic=drop_monomorphic)
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
                cleaner.add(record.gt_types, record.CHROM, record.POS, record.ID or ".", record.REF, alts[0])
        except InputError:
            raise
        except Exception as e:
            raise InputError(path, f"malformed VCF record after {last}: "
                                   f"{htslib.errors() or _one_line(e)}") from None
        finally:
            bar.close()
            vcf.close()
    return cleaner.finish(samples)


def read_plink(path: str | os.PathLike, *, strict: bool = False, chunk_size: int = 16384,
               progress: bool = True) -> Genotypes:
    """Read PLINK .bed/.bim/.fam (path to the .bed or the common prefix); dosage = count of allele 1."""
    from bed_reader import open_bed

    path = Path(path)
    bed_path = path if path.suffix == ".bed" else path.with_suffix(path.suffix + ".bed")
    for p in (bed_path, bed_path.with_suffix(".bim"), bed_path.with_suffix(".fam")):
        _require_file(p)
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


def read_genotypes(path: str | os.PathLike, **kwargs) -> Genotypes:
    """Read genotypes with the reader that the file's suffix names."""
    name = Path(path).name.lower()
    for suffix in sorted(GENOTYPE_READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return GENOTYPE_READERS[suffix](path, **kwargs)
    raise InputError(path, f"unknown genotype format (expected one of {', '.join(GENOTYPE_READERS)})")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def _genotype_table(phased: bool) -> np.ndarray:
    """Byte codes [4 or 3, 4]: 'a|b' or 'a/b' followed by a tab."""
    texts = ["0|0\t", "0|1\t", "1|0\t", "1|1\t"] if phased else ["0/0\t", "0/1\t", "1/1\t"]
    return np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), 4)


class VcfWriter:
    """Bgzipped VCF written under a temporary name and renamed when the `with` block ends cleanly."""

    def __init__(self, path: str | os.PathLike, samples: Sequence[str],
                 contigs: dict[str, int] | None = None, phased: bool = False,
                 source: str = "genodiff-jax"):
        self.path, self.samples, self.phased = Path(path), [str(s) for s in samples], phased
        self.contigs, self.source = contigs or {}, source
        self._table = _genotype_table(phased)
        self._atomic = None
        self._handle = None

    def __enter__(self) -> VcfWriter:
        from Bio import bgzf

        self._atomic = atomic_file(self.path)
        tmp = self._atomic.__enter__()
        self._handle = bgzf.BgzfWriter(str(tmp), "wb")
        header = ["##fileformat=VCFv4.2", f"##source={self.source}"]
        header += [f"##contig=<ID={c}" + (f",length={n}>" if n else ">")
                   for c, n in self.contigs.items()]
        header.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
        header.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                                 "FORMAT", *self.samples]))
        self._handle.write(("\n".join(header) + "\n").encode())
        return self

    def write(self, variants: Variants, genotypes: np.ndarray) -> None:
        """Dosages int8 [N, S] (unphased) or haplotype alleles [N, S, 2] (phased)."""
        genotypes = np.asarray(genotypes)
        n = len(self.samples)
        if self.phased:
            if genotypes.ndim != 3 or genotypes.shape[2] != 2:
                raise ValueError("phased writing takes haplotypes [N, S, 2]")
            codes = genotypes[..., 0].astype(np.int8) * 2 + genotypes[..., 1]
        else:
            if genotypes.ndim != 2:
                raise ValueError("unphased writing takes dosages [N, S]")
            codes = genotypes.astype(np.int8)
        if codes.shape != (n, len(variants)):
            raise ValueError(f"genotypes {codes.shape} do not match {n} samples x "
                             f"{len(variants)} variants")
        if codes.size and (codes.min() < 0 or codes.max() >= len(self._table)):
            raise ValueError("genotype codes out of range")
        rows = self._table[codes.T]  # [S, N, 4]
        rows[:, -1, -1] = ord("\n")
        rows = rows.reshape(len(variants), n * 4)
        lines = [
            f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t.\tGT\t".encode() + row.tobytes()
            for c, p, i, r, a, row in zip(variants.chrom, variants.pos, variants.id, variants.ref,
                                          variants.alt, rows)
        ]
        self._handle.write(b"".join(lines))

    def __exit__(self, exc_type, exc, tb) -> None:
        self._handle.close()
        self._atomic.__exit__(exc_type, exc, tb)


def write_vcf(path: str | os.PathLike, variants: Variants, samples: Sequence[str],
              genotypes: np.ndarray, *, phased: bool, contigs: dict[str, int] | None = None,
              chunk_size: int = 4096) -> None:
    """Write a whole matrix (dosages [N, S] or haplotypes [N, S, 2]) as bgzipped VCF."""
    if contigs is None:  # declare every chromosome written, in order of appearance (no lengths)
        contigs = dict.fromkeys(map(str, variants.chrom), 0)
    with VcfWriter(path, samples, contigs=contigs, phased=phased) as writer:
        for start in range(0, len(variants), chunk_size):
            stop = start + chunk_size
            writer.write(variants.take(slice(start, stop)), genotypes[:, start:stop])


def write_plink(prefix: str | os.PathLike, variants: Variants, samples: Sequence[str],
                dosages: np.ndarray) -> None:
    """Write PLINK .bed/.bim/.fam with allele 1 = ALT, so a reader counting allele 1 gets dosages."""
    from bed_reader import to_bed

    prefix = Path(prefix)
    samples = [str(s) for s in samples]
    with atomic_dir(prefix.parent / f".{prefix.name}.plink") as tmp:
        to_bed(tmp / (prefix.name + ".bed"), np.asarray(dosages, np.int8),
               properties={"fid": samples, "iid": samples, "sid": list(variants.id),
                           "chromosome": list(variants.chrom), "bp_position": list(variants.pos),
                           "allele_1": list(variants.alt), "allele_2": list(variants.ref)},
               count_A1=True)
        for suffix in (".bed", ".bim", ".fam"):
            os.replace(tmp / (prefix.name + suffix), prefix.with_name(prefix.name + suffix))


# ---------------------------------------------------------------------------------------------
# Panels (sample labels) and gene BEDs
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Panel:
    """Per-sample labels: `sample` ids and named columns (pop, super_pop, traits ...)."""

    samples: np.ndarray
    columns: dict[str, np.ndarray]


def read_panel(path: str | os.PathLike) -> Panel:
    """A tab- or space-separated table with a header whose first column is the sample id."""
    path = Path(path)
    _require_file(path)
    with open(path, newline="") as f:
        lines = [line.split() for line in f if line.strip()]
    if not lines:
        raise InputError(path, "panel file is empty")
    header, rows = lines[0], lines[1:]
    if header[0].lower() not in ("sample", "sample_id", "iid", "id"):
        raise InputError(path, f"panel header must start with a 'sample' column, found '{header[0]}'")
    if not rows:
        raise InputError(path, "panel has a header but no samples")
    for lineno, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InputError(path, f"line {lineno} has {len(row)} fields, header has {len(header)}")
    table = np.array(rows, dtype=str)
    samples = table[:, 0]
    unique, counts = np.unique(samples, return_counts=True)
    if (counts > 1).any():
        raise InputError(path, f"duplicate sample ids: {', '.join(unique[counts > 1][:3])}")
    return Panel(samples, {name: table[:, j] for j, name in enumerate(header[1:], start=1)})


def write_panel(path: str | os.PathLike, samples: Sequence[str],
                columns: dict[str, Sequence]) -> None:
    """Write a panel: header `sample<TAB>col...`, one row per sample."""
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["sample", *columns])
        for i, sample in enumerate(samples):
            writer.writerow([sample, *(values[i] for values in columns.values())])


@dataclasses.dataclass(frozen=True)
class GeneTable:
    """Gene bodies: chromosome, 0-based start, exclusive end, name."""

    chrom: np.ndarray
    start: np.ndarray
    end: np.ndarray
    name: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def read_bed(path: str | os.PathLike) -> GeneTable:
    """A BED file of gene bodies (at least chrom, start, end, name); track/browser/# lines skipped."""
    path = Path(path)
    _require_file(path)
    chrom, start, end, name = [], [], [], []
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.split()
            if len(fields) < 3:
                raise InputError(path, f"line {lineno} has {len(fields)} fields, BED needs >= 3")
            try:
                s, e = int(fields[1]), int(fields[2])
            except ValueError:
                raise InputError(path, f"line {lineno}: start/end are not integers") from None
            if s < 0 or e <= s:
                raise InputError(path, f"line {lineno}: bad interval {s}-{e}")
            chrom.append(normalise_chrom(fields[0]))
            start.append(s)
            end.append(e)
            name.append(fields[3] if len(fields) > 3 else f"{fields[0]}:{s}-{e}")
    if not start:
        raise InputError(path, "BED file has no intervals")
    return GeneTable(np.array(chrom, dtype=str), np.array(start, np.int64), np.array(end, np.int64),
                     np.array(name, dtype=str))


def write_bed(path: str | os.PathLike, chrom: Sequence, start: Sequence, end: Sequence,
              name: Sequence) -> None:
    """Write a 4-column gene BED (0-based start, exclusive end)."""
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        for c, s, e, n in zip(chrom, start, end, name):
            f.write(f"{c}\t{int(s)}\t{int(e)}\t{n}\n")


def normalise_chrom(name: str) -> str:
    """'chr2' and '2' name the same chromosome."""
    name = str(name)
    return name[3:] if name.lower().startswith("chr") else name


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
    """Collect htslib's messages (it writes them straight to fd 2) so that a bad file ends in one clean
    line naming the file; progress bars keep writing to the real terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, os.fdopen(os.dup(saved), "w") as terminal:
        os.dup2(sink.fileno(), 2)
        try:
            yield _CapturedStderr(sink, terminal)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
