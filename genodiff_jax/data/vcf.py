"""VCF/BCF in (cyvcf2): biallelic SNP records to dosages or phase codes, with the call
policies of `read_vcf` and htslib's messages turned into one line naming the file."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.data.calls import (
    MISSING,
    ChunkCleaner,
    Genotypes,
    is_snp,
    one_line,
)
from genodiff_jax.errors import InputError, require_file

# Chromosomes where haploid calls are expected (male X and Y, mitochondria), by every usual name.
HAPLOID_CHROMOSOMES = frozenset({"X", "Y", "MT", "M", "chrX", "chrY", "chrM", "chrMT",
                                 "23", "24", "25", "26"})
_VECTOR_END = -2  # cyvcf2's allele index past a call's last allele (a haploid call's 2nd)
_DECODE_BLOCK = 256  # VCF records whose raw calls are checked and converted at once
_GZIP_MAGIC = b"\x1f\x8b"  # bgzip (and BCF) files are gzip streams


class _VcfCalls:
    """The raw calls of biallelic SNP records, checked and converted a block of records at a time
    (per record only a copy): to dosages a + b, or to phase codes 2 a + b, MISSING where an allele
    is missing. Policies: see `read_vcf`."""

    def __init__(self, path: Path, samples: np.ndarray, cleaner: ChunkCleaner, codes: bool,
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


def vcf_samples(path: str | os.PathLike) -> list[str]:
    """The sample names in a VCF's header (a file `read_vcf` has already read)."""
    from cyvcf2 import VCF

    return list(VCF(str(path)).samples)


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
                                   f"({htslib.text() or one_line(e)})") from None
        samples = np.array(vcf.samples, dtype=str)
        if samples.size == 0:
            raise InputError(path, "VCF has no samples")
        cleaner = ChunkCleaner(path, len(samples), chunk_size, strict,
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
                if not is_snp(record.REF, alts[0]):
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
                                   f"{htslib.errors() or one_line(e)}") from None
        finally:
            bar.close()
            vcf.close()
    genotypes = cleaner.finish(samples)
    genotypes.phased = haplotypes and calls.n_unphased == 0
    return genotypes


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
