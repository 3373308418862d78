"""SNP -> gene assignment (DESIGN 1.1): from a gene BED, or fixed windows of SNPs without one.

A SNP inside a gene body belongs to that gene (to every gene that contains it); an intergenic SNP
goes to the nearest gene on its chromosome. SNPs on chromosomes without any gene are left out and
counted.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from genodiff_jax.data.io import Variants
from genodiff_jax.data.tables import GeneTable, normalise_chrom
from genodiff_jax.errors import InputError


@dataclasses.dataclass(frozen=True)
class GeneAssignment:
    """Genes in genome order and their SNP columns, stored as CSR
    (`offsets` [G+1], `snps` [nnz])."""

    names: np.ndarray
    offsets: np.ndarray
    snps: np.ndarray
    n_unassigned: int = 0

    def __len__(self) -> int:
        return len(self.names)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def members(self, g: int) -> np.ndarray:
        return self.snps[self.offsets[g]:self.offsets[g + 1]]

    @property
    def used_snps(self) -> np.ndarray:
        """Sorted SNP columns that belong to at least one gene."""
        return np.unique(self.snps)

    @classmethod
    def from_lists(cls, names, members, n_unassigned: int = 0) -> GeneAssignment:
        sizes = np.array([len(m) for m in members], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        snps = (np.concatenate(members).astype(np.int64) if len(members)
                else np.zeros(0, np.int64))
        return cls(np.asarray(names, dtype=str), offsets, snps, n_unassigned)


def _chromosome_runs(chrom: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Column indices per chromosome, chromosomes in order of first appearance."""
    names, first = np.unique(chrom, return_index=True)
    return [(str(c), np.flatnonzero(chrom == c)) for c in names[np.argsort(first)]]


def assign_genes(variants: Variants, genes: GeneTable,
                 bed_path: str | os.PathLike | None = None) -> GeneAssignment:
    """In-gene SNPs to every gene containing them; intergenic SNPs to the nearest gene."""
    chrom = np.array([normalise_chrom(c) for c in variants.chrom], dtype=str)
    names: list[str] = []
    members: list[np.ndarray] = []
    n_unassigned = n_inside = 0
    for c, cols in _chromosome_runs(chrom):
        on_chrom = genes.chrom == c
        if not on_chrom.any():
            n_unassigned += len(cols)
            continue
        order = np.argsort(variants.pos[cols], kind="stable")
        cols, pos = cols[order], variants.pos[cols][order]
        g_idx = np.flatnonzero(on_chrom)
        g_idx = g_idx[np.lexsort((genes.end[g_idx], genes.start[g_idx]))]
        start, end = genes.start[g_idx], genes.end[g_idx]
        # BED [start, end) 0-based covers 1-based positions start+1 .. end.
        lo = np.searchsorted(pos, start, side="right")
        hi = np.searchsorted(pos, end, side="right")
        inside = np.zeros(len(pos), bool)
        per_gene = [list(range(a, b)) for a, b in zip(lo, hi)]
        for a, b in zip(lo, hi):
            inside[a:b] = True
        n_inside += int(inside.sum())
        outside = np.flatnonzero(~inside)
        if len(outside):
            nearest = _nearest_gene(pos[outside], start, end)
            for k, j in zip(nearest, outside):
                per_gene[k].append(j)
        for k, rows in enumerate(per_gene):
            if rows:
                names.append(str(genes.name[g_idx[k]]))
                members.append(cols[np.sort(np.asarray(rows, np.int64))])
    if n_inside == 0:
        bed_chroms = ", ".join(sorted(set(genes.chrom))[:5])
        vcf_chroms = ", ".join(c for c, _ in _chromosome_runs(chrom)[:5])
        raise InputError(bed_path, f"no gene overlaps any variant (variants on {vcf_chroms}; "
                                   f"genes on {bed_chroms}...)")
    return GeneAssignment.from_lists(names, members, n_unassigned)


def _nearest_gene(pos: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """For SNPs outside every gene: the index of the closest gene body (ties to the left one)."""
    by_end = np.argsort(end, kind="stable")
    left = np.searchsorted(end[by_end], pos, side="left") - 1  # last gene ending before pos
    right = np.searchsorted(start, pos, side="left")  # first gene starting at/after pos (0-based)
    has_left, has_right = left >= 0, right < len(start)
    left_gene = by_end[np.clip(left, 0, None)]
    right_gene = np.clip(right, 0, len(start) - 1)
    d_left = np.where(has_left, pos - end[left_gene], np.inf)
    d_right = np.where(has_right, start[right_gene] + 1 - pos, np.inf)
    return np.where(d_left <= d_right, left_gene, right_gene)


def window_genes(variants: Variants, window: int) -> GeneAssignment:
    """Without an annotation: consecutive runs of `window` SNPs per chromosome act as genes."""
    if window < 1:
        raise InputError(None, f"--window must be >= 1, got {window}")
    names, members = [], []
    for c, cols in _chromosome_runs(np.asarray(variants.chrom, dtype=str)):
        cols = cols[np.argsort(variants.pos[cols], kind="stable")]
        for a in range(0, len(cols), window):
            block = np.sort(cols[a:a + window])
            names.append(f"{c}:{variants.pos[block].min()}-{variants.pos[block].max()}")
            members.append(block)
    return GeneAssignment.from_lists(names, members)
