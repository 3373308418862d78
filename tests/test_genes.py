"""SNP -> gene assignment (DESIGN 1.1) and fixed windows."""

from __future__ import annotations

import numpy as np
import pytest

from genodiff_jax.data import genes, io, tables
from genodiff_jax.errors import InputError


def _variants(chrom, pos):
    n = len(pos)
    return io.Variants(np.array(chrom), np.array(pos, np.int64), np.array(["."] * n),
                       np.array(["A"] * n), np.array(["C"] * n))


def test_in_gene_overlapping_and_intergenic_snps():
    # Genes (BED, 0-based): A covers positions 101-200, B 151-300 (overlaps A), C 1001-1100.
    table = tables.GeneTable(np.array(["1", "1", "1"]), np.array([100, 150, 1000]),
                         np.array([200, 300, 1100]), np.array(["A", "B", "C"]))
    pos = [100, 101, 160, 250, 301, 640, 660, 1050, 5000]
    a = genes.assign_genes(_variants(["1"] * 9, pos), table)
    members = {name: list(a.members(g)) for g, name in enumerate(a.names)}
    # 100 is intergenic, nearest A; 160 is in A and B; 301 -> B; 640 -> B (340 from B, 361 from C);
    # 660 -> C (341 from C); 5000 -> C.
    assert members == {"A": [0, 1, 2], "B": [2, 3, 4, 5], "C": [6, 7, 8]}
    assert list(a.names) == ["A", "B", "C"] and a.n_unassigned == 0


def test_snps_on_chromosomes_without_genes_are_counted_and_empty_genes_dropped():
    table = tables.GeneTable(np.array(["1", "1"]), np.array([0, 10_000]), np.array([50, 10_050]),
                         np.array(["A", "FAR"]))
    a = genes.assign_genes(_variants(["1", "1", "3"], [10, 20, 30]), table)
    assert list(a.names) == ["A"] and a.n_unassigned == 1
    assert list(a.used_snps) == [0, 1]


def test_bed_that_overlaps_no_variant_is_an_error():
    table = tables.GeneTable(np.array(["7"]), np.array([0]), np.array([50]), np.array(["A"]))
    with pytest.raises(InputError, match="genes.bed: no gene overlaps any variant"):
        genes.assign_genes(_variants(["1"], [10]), table, "genes.bed")


def test_windows_follow_chromosomes():
    v = _variants(["1"] * 5 + ["2"] * 3, [5, 1, 2, 3, 4, 1, 2, 3])
    a = genes.window_genes(v, 2)
    assert [list(a.members(g)) for g in range(len(a))] == [[1, 2], [3, 4], [0], [5, 6], [7]]
    assert a.names[0] == "1:1-2"
