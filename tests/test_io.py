"""Genotype I/O: round trips through VCF and PLINK, site policies and their counts, panels, BEDs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_text_vcf
from cyvcf2 import VCF

from genodiff_jax.data import io, tables, writers
from genodiff_jax.errors import InputError


def test_phased_vcf_round_trip_reads_back_equal_with_cyvcf2(small_cohort):
    records = list(VCF(str(small_cohort["vcf"])))
    haps = small_cohort["haps"]
    assert len(records) == haps.shape[1]
    for j in (0, 17, 299):
        gt = records[j].genotype.array()  # [N, 3]: allele, allele, phased
        np.testing.assert_array_equal(gt[:, :2], haps[:, j, :])
        assert gt[:, 2].all()
    g = io.read_vcf(small_cohort["vcf"], progress=False)
    np.testing.assert_array_equal(g.dosages, haps.sum(-1))
    assert list(g.samples) == small_cohort["samples"]
    assert g.variants.pos.dtype == np.int64 and g.variants.chrom[0] == "1"


def test_unphased_vcf_and_plink_round_trips(small_cohort, tmp_path):
    g = io.read_vcf(small_cohort["vcf"], progress=False)
    writers.write_vcf(tmp_path / "u.vcf.gz", g.variants, g.samples, g.dosages, phased=False)
    u = io.read_vcf(tmp_path / "u.vcf.gz", progress=False)
    np.testing.assert_array_equal(u.dosages, g.dosages)
    assert not any(r.genotype.array()[:, 2].any() for r in VCF(str(tmp_path / "u.vcf.gz")))
    writers.write_plink(tmp_path / "p", g.variants, g.samples, g.dosages)
    p = io.read_genotypes(tmp_path / "p.bed", progress=False)
    np.testing.assert_array_equal(p.dosages, g.dosages)
    for field in ("chrom", "pos", "id", "ref", "alt"):
        np.testing.assert_array_equal(getattr(p.variants, field), getattr(g.variants, field))
    np.testing.assert_array_equal(p.samples, g.samples)


def test_a_dosage_vcf_carries_ds_and_info_that_cyvcf2_reads(small_cohort, tmp_path):
    """FORMAT/DS (three decimals) beside GT and an INFO string a variant, as an imputation
    writes them; a dosage out of [0, 2] or of another shape is refused."""
    g = io.read_vcf(small_cohort["vcf"], progress=False)
    variants = g.variants.take(slice(0, 40))
    haps = small_cohort["haps"][:, :40]
    ds = np.random.default_rng(0).uniform(0, 2, haps.shape[:2])
    ds[0, :5] = [0.0, 2.0, 1.0005, 2.0000002, -1e-7]  # float noise past 0 and 2 is written
    info = [f"DR2={j / 40:.3f}" + (";IMP" if j % 3 == 0 else "") for j in range(40)]
    meta = ['##INFO=<ID=DR2,Number=A,Type=Float,Description="r2">',
            '##INFO=<ID=IMP,Number=0,Type=Flag,Description="imputed">']
    writers.write_vcf(tmp_path / "d.vcf.gz", variants, g.samples, haps, phased=True, dosage=ds,
                      info=info, meta=meta, chunk_size=16)
    records = list(VCF(str(tmp_path / "d.vcf.gz")))
    got = np.stack([r.format("DS")[:, 0] for r in records], axis=1)
    np.testing.assert_allclose(got, ds, atol=5e-4 + 1e-6)
    assert got[0, :5].tolist() == pytest.approx([0.0, 2.0, 1.0, 2.0, 0.0])  # ties to even
    assert [r.INFO["DR2"] for r in records] == pytest.approx([j / 40 for j in range(40)])
    assert [r.INFO.get("IMP") is not None for r in records] == [j % 3 == 0 for j in range(40)]
    np.testing.assert_array_equal(
        np.stack([r.genotype.array()[:, :2] for r in records], axis=1), haps)
    nan = ds.copy()
    nan[1, 1] = np.nan
    for bad, message in ((ds + 0.5, r"in \[0, 2\]"), (nan, r"in \[0, 2\]"),
                         (ds[:, :39], "does not match")):
        with pytest.raises(ValueError, match=message):
            writers.write_vcf(tmp_path / "x.vcf.gz", variants, g.samples, haps, phased=True,
                              dosage=bad)
        assert not (tmp_path / "x.vcf.gz").exists()


@pytest.mark.parametrize("phased", [True, False])
def test_pgen_round_trips_through_pgenlib(small_cohort, tmp_path, phased):
    """PLINK 2 files read back with pgenlib's own reader: alleles in order (phased) or dosages,
    the phase flag, .pvar's REF/ALT and .psam's columns."""
    import pgenlib

    g = io.read_vcf(small_cohort["vcf"], haplotypes=True, progress=False)
    haps = g.haplotypes().transpose(0, 2, 1)  # [N, S, 2]
    genotypes = haps if phased else g.dosages
    pops = [f"P{i % 3}" for i in range(len(g.samples))]
    writers.write_pgen(tmp_path / "syn", g.variants, g.samples, genotypes, phased=phased,
                       sample_columns={"pop": pops})
    n, s = g.shape
    with pgenlib.PgenReader(str(tmp_path / "syn.pgen").encode()) as reader:
        assert (reader.get_raw_sample_ct(), reader.get_variant_ct()) == (n, s)
        assert bool(reader.hardcall_phase_present()) == phased
        alleles = np.empty((s, 2 * n), np.int32)
        phase = np.empty((s, n), np.uint8)
        reader.read_alleles_and_phasepresent_range(0, s, alleles, phase)
        dosages = np.empty((s, n), np.int8)
        reader.read_range(0, s, dosages)
    np.testing.assert_array_equal(dosages.T, g.dosages)
    het = g.dosages.T == 1
    if phased:
        np.testing.assert_array_equal(alleles.reshape(s, n, 2).transpose(1, 0, 2), haps)
        assert phase[het].all()
    else:
        assert not phase[het].any()
    pvar = [line.split("\t") for line in (tmp_path / "syn.pvar").read_text().splitlines()]
    assert pvar[0] == ["#CHROM", "POS", "ID", "REF", "ALT"] and len(pvar) == s + 1
    assert pvar[5] == [str(g.variants.chrom[4]), str(g.variants.pos[4]), g.variants.id[4],
                       g.variants.ref[4], g.variants.alt[4]]
    psam = [line.split("\t") for line in (tmp_path / "syn.psam").read_text().splitlines()]
    assert psam[0] == ["#IID", "pop"] and psam[1:] == [[str(i), p] for i, p in zip(g.samples, pops)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("syn", ".syn"))) == [
        "syn.pgen", "syn.psam", "syn.pvar"]


def test_pgen_refuses_a_shape_that_does_not_match_and_writes_nothing(small_cohort, tmp_path):
    g = io.read_vcf(small_cohort["vcf"], progress=False)
    with pytest.raises(ValueError, match="phased haplotypes"):
        writers.write_pgen(tmp_path / "syn", g.variants, g.samples, g.dosages, phased=True)
    assert list(tmp_path.glob("syn*")) == [] and list(tmp_path.glob(".syn.pgen.*")) == []


def test_site_policies_are_applied_and_counted(tmp_path):
    rows = [
        ("1", 10, "snp", "A", "G", ["0|1", "1|1", "0|0", "0|1"]),
        ("1", 20, "multi", "A", "G,T", ["0|1", "1|1", "0|0", "0|1"]),
        ("1", 30, "ins", "A", "AT", ["0|1", "1|1", "0|0", "0|1"]),
        ("1", 40, "mnp", "AC", "GT", ["0|1", "1|1", "0|0", "0|1"]),
        ("1", 50, "mono", "C", "T", ["1|1", "1|1", "1|1", "1|1"]),
        ("1", 60, "miss", "C", "T", ["./.", "0|1", "0|1", "1|1"]),  # mode of 1, 1, 2 is 1
        ("1", 70, "allmiss", "C", "T", ["./.", "./.", "./.", "./."]),
    ]
    path = write_text_vcf(tmp_path / "p.vcf", ["a", "b", "c", "d"], rows)
    for chunk in (1, 2, 4096):  # chunking must not change anything
        g = io.read_vcf(path, chunk_size=chunk, progress=False)
        c = g.counts
        assert (c.n_records, c.n_multiallelic, c.n_indel, c.n_monomorphic) == (7, 1, 2, 2)
        assert c.n_used == 2 and c.n_used + c.n_skipped == c.n_records
        assert c.n_missing_filled == 5
        np.testing.assert_array_equal(g.variants.id, ["snp", "miss"])
        np.testing.assert_array_equal(g.dosages, [[1, 1], [2, 1], [0, 1], [1, 2]])
    with pytest.raises(InputError, match=r"p\.vcf.*missing genotype call at 1:60"):
        io.read_vcf(path, strict=True, progress=False)


def test_haplotypes_keep_phase_and_no_calls(tmp_path):
    rows = [
        ("1", 10, "s1", "A", "G", ["0|1", "1|0", "0|0"]),
        ("1", 20, "s2", "C", "T", [".|.", "1|1", "0|1"]),
        ("1", 30, "s3", "G", "A", ["1|0", "0|0", "1|1"]),
    ]
    path = write_text_vcf(tmp_path / "h.vcf", ["a", "b", "c"], rows)
    g = io.read_vcf(path, haplotypes=True, keep_missing=True, progress=False)
    assert g.phased
    M = io.MISSING
    expected = np.array([[[0, M, 1], [1, M, 0]],   # person a: haplotype 1, haplotype 2
                         [[1, 1, 0], [0, 1, 0]],
                         [[0, 0, 1], [0, 1, 1]]], np.int8)
    np.testing.assert_array_equal(g.haplotypes(), expected)
    np.testing.assert_array_equal(g.haplotypes(np.array([2, 0]), np.array([2, 1])),
                                  expected[[2, 0]][:, :, [2, 1]])
    observed = expected[:, 0] != M
    np.testing.assert_array_equal(g.dosages[observed], expected.sum(axis=1)[observed])


def test_panel_and_bed_readers(tmp_path):
    tables.write_panel(tmp_path / "x.panel", ["s1", "s2"],
                       {"pop": ["A", "B"], "trait": ["case", "control"]})
    panel = tables.read_panel(tmp_path / "x.panel")
    assert list(panel.samples) == ["s1", "s2"] and list(panel.columns) == ["pop", "trait"]
    (tmp_path / "bad.panel").write_text("sample\tpop\ns1\tA\ns1\tB\n")
    with pytest.raises(InputError, match="duplicate sample ids: s1"):
        tables.read_panel(tmp_path / "bad.panel")
    (tmp_path / "g.bed").write_text("track name=x\nchr2\t10\t20\tG1\n2\t30\t40\n")
    bed = tables.read_bed(tmp_path / "g.bed")
    assert list(bed.chrom) == ["2", "2"] and list(bed.name) == ["G1", "2:30-40"]
    (tmp_path / "b.bed").write_text("2\t50\t40\tG1\n")
    with pytest.raises(InputError, match="line 1: bad interval"):
        tables.read_bed(tmp_path / "b.bed")


def test_unknown_format_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown genotype format"):
        io.read_genotypes(tmp_path / "x.txt")


def test_real_vcf_counts_add_up(shared_data):
    g = io.read_vcf(shared_data / "1kg_lct_chr2.vcf.gz", progress=False)
    c = g.counts
    assert g.dosages.shape == (2504, c.n_used) and g.dosages.dtype == np.int8
    assert (c.n_records, c.n_multiallelic, c.n_indel) == (8076, 35, 376)
    assert c.n_used + c.n_skipped == 8076
    assert set(np.unique(g.dosages)) == {0, 1, 2}
    assert "rs4988235" in set(g.variants.id)  # the lactase-persistence SNP survives the filters


# -- malformed calls and files (issue 15) ----------------------------------------------------------

@pytest.mark.parametrize("haplotypes", [False, True])
def test_allele_index_beyond_the_site_is_an_input_error(tmp_path, haplotypes):
    """`0/3` at a biallelic site was read as heterozygous."""
    rows = [("1", 10, "s1", "A", "G", ["0|1", "1|1", "0|0"]),
            ("1", 20, "s2", "C", "T", ["0|1", "0/3", "0|0"])]
    path = write_text_vcf(tmp_path / "idx.vcf", ["a", "b", "c"], rows)
    with pytest.raises(InputError, match=r"idx\.vcf: record 1:20, sample b: allele index 3 but "
                                         r"the site has 2 alleles"):
        io.read_vcf(path, haplotypes=haplotypes, progress=False)


def test_haploid_calls_are_homozygous_on_x_and_an_error_on_autosomes(tmp_path):
    rows = [("X", 10, "x1", "A", "G", ["1", "0|1", "0"]),
            ("chrY", 20, "y1", "C", "T", ["0", "1", "1"]),  # a record of haploid calls only
            ("X", 30, "x2", "G", "A", [".", "1|1", "0|0"])]  # '.' alone is a no-call
    path = write_text_vcf(tmp_path / "sex.vcf", ["a", "b", "c"], rows)
    for chunk in (1, 4096):
        g = io.read_vcf(path, haplotypes=True, keep_missing=True, chunk_size=chunk,
                        progress=False)
        assert g.counts.n_haploid == 5 and g.phased  # a haploid call has no phase to lose
        M = io.MISSING
        np.testing.assert_array_equal(g.haplotypes(), [[[1, 0, M], [1, 0, M]],
                                                       [[0, 1, 1], [1, 1, 1]],
                                                       [[0, 1, 0], [0, 1, 0]]])
        dosages = io.read_vcf(path, progress=False)
        np.testing.assert_array_equal(dosages.dosages[:, :2], [[2, 0], [1, 2], [0, 2]])
        assert dosages.counts.n_haploid == 5 and dosages.counts.n_missing_filled == 1
    rows[1] = ("2", 20, "y1", "C", "T", ["0|0", "0|1", "1"])
    path = write_text_vcf(tmp_path / "auto.vcf", ["a", "b", "c"], rows)
    for haplotypes in (False, True):
        with pytest.raises(InputError, match=r"auto\.vcf: record 2:20, sample c: haploid call on "
                                             r"chromosome 2"):
            io.read_vcf(path, haplotypes=haplotypes, progress=False)


@pytest.mark.parametrize("keep", ["body", "header"])
def test_truncated_bgzip_is_named_as_such(tmp_path, keep):
    """Cut inside a later bgzip block, htslib said only `error-code: 0 and ret: -2`."""
    rng = np.random.default_rng(0)
    s = 3000  # ~170 kB of text: three bgzip blocks
    variants = io.Variants(np.array(["1"] * s), np.arange(s, dtype=np.int64) * 10 + 100,
                           np.array([f"rs{i}" for i in range(s)]), np.array(["A"] * s),
                           np.array(["G"] * s))
    writers.write_vcf(tmp_path / "full.vcf.gz", variants, ["a", "b", "c", "d"],
                      (rng.random((4, s, 2)) < 0.3).astype(np.int8), phased=True)
    data = (tmp_path / "full.vcf.gz").read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[:len(data) * 3 // 4] if keep == "body" else data[:200])
    with pytest.raises(InputError, match=r"cut\.vcf\.gz: truncated or corrupt compressed file$"):
        io.read_vcf(cut, progress=False)


def test_a_directory_is_named_as_one(tmp_path):
    folder = tmp_path / "cohort.vcf.gz"
    folder.mkdir()
    for read in (io.read_vcf, io.read_genotypes, tables.read_panel, tables.read_bed):
        with pytest.raises(InputError, match=r"cohort\.vcf\.gz: is a directory"):
            read(folder)
    with pytest.raises(InputError, match="is a directory"):
        io.read_genotypes(tmp_path)  # no genotype suffix: still named as a directory
