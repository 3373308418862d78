"""Genotype files out: bgzipped VCF (phased or not), PLINK .bed/.bim/.fam and PLINK 2
.pgen/.pvar/.psam (phased or not), written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genodiff_jax.atomic import atomic_file
from genodiff_jax.data.io import Variants


def _genotype_table(phased: bool) -> np.ndarray:
    """Byte codes [4 or 3, 4]: 'a|b' or 'a/b' followed by a tab."""
    texts = ["0|0\t", "0|1\t", "1|0\t", "1|1\t"] if phased else ["0/0\t", "0/1\t", "1/1\t"]
    return np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), 4)


BGZF_BLOCK = 65536  # bytes of uncompressed text a BGZF block holds
DS_DECIMALS = 3  # FORMAT/DS is written as "d.ddd"
DS_HEADER = ('##FORMAT=<ID=DS,Number=A,Type=Float,Description="Estimated ALT dose '
             '[P(RA) + 2*P(AA)]">')


def _dosage_table() -> np.ndarray:
    """Byte codes [2001, 5]: the DS text "0.000" ... "2.000" of each thousandth."""
    steps = 2 * 10 ** DS_DECIMALS + 1
    texts = [f"{k / 10 ** DS_DECIMALS:.{DS_DECIMALS}f}" for k in range(steps)]
    return np.frombuffer("".join(texts).encode(), np.uint8).reshape(steps, -1)


_DS_TABLE = _dosage_table()


class VcfWriter:
    """Bgzipped VCF written under a temporary name
    and renamed when the `with` block ends cleanly; an error or Ctrl-C drops what is still
    buffered and removes the temporary at once (no compressing of text that is thrown away).

    `dosage`: every call also carries FORMAT/DS, each person's ALT dose (an imputation's
    output, as Beagle writes it); `meta`: further header lines (e.g. the INFO fields that
    `write`'s `info` strings use)."""

    def __init__(self, path: str | os.PathLike, samples: Sequence[str],
                 contigs: dict[str, int] | None = None, phased: bool = False,
                 source: str = "genodiff-jax", *, dosage: bool = False,
                 meta: Sequence[str] = ()):
        self.path, self.samples, self.phased = Path(path), [str(s) for s in samples], phased
        self.contigs, self.source, self.dosage, self.meta = contigs or {}, source, dosage, meta
        self._table = _genotype_table(phased)
        self._atomic = None
        self._file = None
        self._handle = None

    def __enter__(self) -> VcfWriter:
        from Bio import bgzf

        self._atomic = atomic_file(self.path)
        tmp = self._atomic.__enter__()
        self._file = open(tmp, "wb")  # noqa: SIM115 (closed by __exit__)
        self._handle = bgzf.BgzfWriter(fileobj=self._file)
        header = ["##fileformat=VCFv4.2", f"##source={self.source}"]
        header += [f"##contig=<ID={c}" + (f",length={n}>" if n else ">")
                   for c, n in self.contigs.items()]
        header += list(self.meta)
        header.append('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
        if self.dosage:
            header.append(DS_HEADER)
        header.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                                 "FORMAT", *self.samples]))
        self._write(("\n".join(header) + "\n").encode())
        return self

    def write(self, variants: Variants, genotypes: np.ndarray, *,
              dosage: np.ndarray | None = None, info: Sequence[str] | None = None) -> None:
        """Dosages int8 [N, S] (unphased) or haplotype alleles [N, S, 2] (phased); with a
        `dosage` writer, `dosage` float [N, S] in [0, 2] (FORMAT/DS); `info` one INFO string a
        variant (default ".")."""
        if (dosage is None) == self.dosage:
            raise ValueError("a dosage writer takes dosage= with every write, no other does")
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
        rows = self._table[codes.T]  # [S, N, 4]: "a|b\t"
        if self.dosage:
            colon = np.full(rows.shape[:2] + (1,), ord(":"), np.uint8)
            ds = self._dosage_text(dosage, codes.shape)
            rows = np.concatenate([rows[..., :3], colon, ds, rows[..., 3:]], axis=-1)  # a|b:d.ddd
        rows[:, -1, -1] = ord("\n")
        rows = rows.reshape(len(variants), -1)
        info = ["."] * len(variants) if info is None else list(info)
        if len(info) != len(variants):
            raise ValueError(f"{len(info)} INFO strings for {len(variants)} variants")
        fmt = "GT:DS" if self.dosage else "GT"
        lines = [
            f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t{inf}\t{fmt}\t".encode() + row.tobytes()
            for c, p, i, r, a, inf, row in zip(variants.chrom, variants.pos, variants.id,
                                               variants.ref, variants.alt, info, rows)
        ]
        self._write(b"".join(lines))

    @staticmethod
    def _dosage_text(dosage: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """DS bytes [S, N, 5] of `dosage` [N, S] (rounded to DS_DECIMALS)."""
        dosage = np.asarray(dosage, np.float64)
        if dosage.shape != shape:
            raise ValueError(f"dosage {dosage.shape} does not match the genotypes {shape}")
        steps = np.rint(dosage.T * 10 ** DS_DECIMALS)  # float noise past 0 or 2 rounds away
        if steps.size and not (np.all(steps >= 0) and np.all(steps < len(_DS_TABLE))):
            raise ValueError("dosages must be in [0, 2]")  # NaN fails both
        return _DS_TABLE[steps.astype(np.int64)]

    def _write(self, text: bytes) -> None:
        # BgzfWriter copies the rest of its buffer after every block it compresses, so one large
        # write costs time quadratic in its size; at most a block at a time it stays linear.
        view = memoryview(text)
        for start in range(0, len(view), BGZF_BLOCK):
            self._handle.write(view[start:start + BGZF_BLOCK])

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._handle.close()  # flushes the last block, writes the EOF block
        except BaseException as e:  # a full disk, Ctrl-C: the temporary goes
            self._file.close()
            self._atomic.__exit__(type(e), e, e.__traceback__)
            raise
        self._file.close()  # after an error the buffered text is dropped, not compressed
        self._atomic.__exit__(exc_type, exc, tb)


def write_vcf(path: str | os.PathLike, variants: Variants, samples: Sequence[str],
              genotypes: np.ndarray, *, phased: bool, contigs: dict[str, int] | None = None,
              chunk_size: int = 4096, dosage: np.ndarray | None = None,
              info: Sequence[str] | None = None, meta: Sequence[str] = ()) -> None:
    """Write a whole matrix (dosages [N, S] or haplotypes [N, S, 2]) as bgzipped VCF; `dosage`
    float [N, S] adds FORMAT/DS, `info` [S] the INFO column, `meta` header lines."""
    if contigs is None:  # declare every chromosome written, in order of appearance (no lengths)
        contigs = dict.fromkeys(map(str, variants.chrom), 0)
    with VcfWriter(path, samples, contigs=contigs, phased=phased, dosage=dosage is not None,
                   meta=meta) as writer:
        for start in range(0, len(variants), chunk_size):
            stop = start + chunk_size
            writer.write(variants.take(slice(start, stop)), genotypes[:, start:stop],
                         dosage=None if dosage is None else dosage[:, start:stop],
                         info=None if info is None else info[start:stop])


def write_plink(prefix: str | os.PathLike, variants: Variants, samples: Sequence[str],
                dosages: np.ndarray) -> None:
    """Write PLINK .bed/.bim/.fam with allele 1 = ALT,
    so a reader counting allele 1 gets dosages."""
    from bed_reader import to_bed

    prefix = Path(prefix)
    samples = [str(s) for s in samples]
    with tempfile.TemporaryDirectory(prefix=f".{prefix.name}.plink.", dir=prefix.parent) as tmp:
        tmp = Path(tmp)
        to_bed(tmp / (prefix.name + ".bed"), np.asarray(dosages, np.int8),
               properties={"fid": samples, "iid": samples, "sid": list(variants.id),
                           "chromosome": list(variants.chrom), "bp_position": list(variants.pos),
                           "allele_1": list(variants.alt), "allele_2": list(variants.ref)},
               count_A1=True)
        for suffix in (".bed", ".bim", ".fam"):
            os.replace(tmp / (prefix.name + suffix), prefix.with_name(prefix.name + suffix))


def write_pgen(prefix: str | os.PathLike, variants: Variants, samples: Sequence[str],
               genotypes: np.ndarray, *, phased: bool,
               sample_columns: dict[str, Sequence[str]] | None = None) -> None:
    """Write PLINK 2 .pgen/.pvar/.psam through pgenlib: dosages [N, S] (unphased) or haplotype
    alleles [N, S, 2] (phased, stored as phased hard calls), REF and ALT as in `variants` (REF is
    the reference allele, so no non-ref flags). `sample_columns` become .psam columns after
    #IID (a label column reads as a categorical phenotype in PLINK 2)."""
    import pgenlib

    genotypes = np.asarray(genotypes)
    samples = [str(s) for s in samples]
    n, s = len(samples), len(variants)
    expected = (n, s, 2) if phased else (n, s)
    if genotypes.shape != expected:
        raise ValueError(f"genotypes {genotypes.shape} do not match {expected} "
                         f"({'phased haplotypes' if phased else 'dosages'})")
    if genotypes.size and (genotypes.min() < 0 or genotypes.max() > (1 if phased else 2)):
        raise ValueError("genotype codes out of range")
    if n == 0 or s == 0:
        raise ValueError("a .pgen needs at least one sample and one variant")
    columns = {k: [str(v) for v in vals] for k, vals in (sample_columns or {}).items()}
    if any(len(vals) != n for vals in columns.values()):
        raise ValueError(f"every .psam column needs {n} values")
    prefix = Path(prefix)
    with tempfile.TemporaryDirectory(prefix=f".{prefix.name}.pgen.", dir=prefix.parent) as tmp:
        def part(suffix: str) -> Path:
            return Path(tmp) / (prefix.name + suffix)

        with pgenlib.PgenWriter(str(part(".pgen")).encode(), n, variant_ct=s,
                                nonref_flags=False, hardcall_phase_present=phased) as writer:
            for start in range(0, s, 4096):
                block = genotypes[:, start:start + 4096]
                if phased:  # variant-major allele codes [S, 2N]: person i's at 2i and 2i + 1
                    codes = block.transpose(1, 0, 2).reshape(block.shape[1], 2 * n)
                    codes = np.ascontiguousarray(codes, np.int32)
                    writer.append_alleles_batch(codes, all_phased=True)
                else:
                    writer.append_biallelic_batch(np.ascontiguousarray(block.T, np.int8))
        rows = zip(variants.chrom, variants.pos, variants.id, variants.ref, variants.alt)
        part(".pvar").write_text(
            "#CHROM\tPOS\tID\tREF\tALT\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
        lines = ["\t".join(["#IID", *columns])]
        lines += ["\t".join([iid, *(vals[i] for vals in columns.values())])
                  for i, iid in enumerate(samples)]
        part(".psam").write_text("\n".join(lines) + "\n")
        for suffix in (".pgen", ".pvar", ".psam"):
            os.replace(part(suffix), prefix.with_name(prefix.name + suffix))
