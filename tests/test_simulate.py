"""The embedded cohort: file formats, determinism, caching, the trait and population structure."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from genodiff_jax.atomic import MARKER
from genodiff_jax.data import simulate
from genodiff_jax.data.io import read_vcf
from genodiff_jax.data.simulate import PRESETS, CohortFiles, SimulationParams, simulate_cohort
from genodiff_jax.data.tables import read_bed, read_panel
from genodiff_jax.errors import InputError

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, cache) -> CohortFiles:
    return simulate_cohort(tmp_path_factory.mktemp("tiny"), TINY, cache_dir=cache, progress=False)


def test_vcf_has_phased_biallelic_snps_in_panel_order(tiny):
    from cyvcf2 import VCF

    panel = read_panel(tiny.panel)
    vcf = VCF(str(tiny.vcf))
    assert list(vcf.samples) == list(panel.samples)
    n, last = 0, {}
    for record in vcf:
        n += 1
        assert len(record.ALT) == 1 and record.REF in "ACGT" and record.ALT[0] in "ACGT"
        assert record.REF != record.ALT[0] and len(record.REF) == 1
        assert record.genotype.array()[:, 2].all()  # every call phased
        assert 1 <= record.POS <= TINY.contig_length
        assert record.POS > last.get(record.CHROM, 0)  # sorted, one record per position
        last[record.CHROM] = record.POS
    assert set(last) == set(TINY.contigs)
    assert n > 500  # enough SNPs to be a cohort at all


def test_panel_populations_and_super_populations(tiny):
    panel = read_panel(tiny.panel)
    assert list(panel.columns) == ["pop", "super_pop", "trait"]
    pops, counts = np.unique(panel.columns["pop"], return_counts=True)
    assert dict(zip(pops, counts)) == dict.fromkeys(TINY.populations, TINY.people_per_pop)
    expected = {"YRI": "AFR", "CEU": "EUR", "CHB": "EAS"}
    assert all(expected[p] == s for p, s in zip(panel.columns["pop"], panel.columns["super_pop"]))
    assert panel.samples[0] == "YRI_0001" and panel.samples[-1] == f"CHB_{TINY.people_per_pop:04d}"


def test_genes_are_sorted_disjoint_and_within_contigs(tiny):
    genes = read_bed(tiny.bed)
    assert len(set(genes.name)) == len(genes) and all(n.startswith("SIMG") for n in genes.name)
    assert set(genes.chrom) == set(TINY.contigs)  # every contig carries genes
    for chrom, length in TINY.contigs.items():
        on = genes.chrom == chrom
        start, end = genes.start[on], genes.end[on]
        assert (start >= 0).all() and (end <= length).all() and (end > start).all()
        assert (start[1:] >= end[:-1]).all()  # sorted and non-overlapping
    order = [int(c) for c in genes.chrom]
    assert order == sorted(order)


def test_vcf_matches_the_tree_sequence(tmp_path):
    """Haplotypes read back equal tskit's genotype matrix at the kept sites
    (across chunk borders)."""
    from cyvcf2 import VCF

    params = dataclasses.replace(TINY, num_contigs=1, trait=False)
    ts = simulate.simulate_contig(params, seed=7)
    keep, _ = simulate._biallelic_snps(ts)
    samples, _ = simulate._sample_table(ts)
    out = tmp_path / "x.vcf.gz"
    simulate._write_vcf(out, [ts], (keep,), samples, params, progress=False, chunk_size=37)
    haps = np.stack([r.genotype.array()[:, :2] for r in VCF(str(out))], axis=1)  # [N, S, 2]
    expected = ts.genotype_matrix()[keep]  # [S, 2N], individuals' nodes are consecutive
    np.testing.assert_array_equal(haps.reshape(len(samples), -1, 2),
                                  expected.T.reshape(len(samples), 2, -1).transpose(0, 2, 1))


def test_same_seed_same_bytes_other_seed_other_genotypes(tiny, tmp_path):
    again = simulate_cohort(tmp_path / "a", TINY, cache_dir=tmp_path / "c1", progress=False)
    assert not again.cached
    assert again.vcf.read_bytes() == tiny.vcf.read_bytes()
    assert again.panel.read_bytes() == tiny.panel.read_bytes()
    assert again.bed.read_bytes() == tiny.bed.read_bytes()
    other = simulate_cohort(tmp_path / "b", dataclasses.replace(TINY, seed=TINY.seed + 1),
                            cache_dir=tmp_path / "c2", progress=False)
    a, b = read_vcf(tiny.vcf, progress=False), read_vcf(other.vcf, progress=False)
    assert a.shape != b.shape or not np.array_equal(a.dosages, b.dosages)
    assert other.bed.read_bytes() != tiny.bed.read_bytes()


def test_second_call_copies_from_cache(tiny, cache, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("simulated again despite the cache")

    monkeypatch.setattr(simulate, "simulate_contig", fail)
    files = simulate_cohort(tmp_path, TINY, cache_dir=cache, progress=False)
    assert files.cached
    for name in simulate.COHORT_FILES:
        assert (tmp_path / name).read_bytes() == (tiny.vcf.parent / name).read_bytes()


def test_killed_run_leaves_no_cache_entry(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate, "_write_vcf", crash)
    with pytest.raises(KeyboardInterrupt):
        simulate_cohort(tmp_path / "out", TINY, cache_dir=tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache" / "cohorts").iterdir()) == []
    assert not (tmp_path / "out" / simulate.VCF_NAME).exists()


def test_case_fraction_is_the_prevalence(tiny):
    trait = read_panel(tiny.panel).columns["trait"]
    assert set(trait) == {"case", "control"}
    n = len(trait)
    assert (trait == "case").sum() == round(TINY.prevalence * n)


def test_cases_differ_at_the_causal_snps(tmp_path):
    """With h2 = 1 the liability is genetic, so cases and controls differ most at causal SNPs."""
    params = dataclasses.replace(TINY, h2=1.0, num_causal=5, prevalence=0.5, seed=3)
    files = simulate_cohort(tmp_path, params, cache_dir=tmp_path / "c", progress=False)
    genotypes = read_vcf(files.vcf, progress=False)
    dosages = genotypes.dosages.astype(float)
    is_case = read_panel(files.panel).columns["trait"] == "case"
    diff = np.abs(dosages[is_case].mean(0) - dosages[~is_case].mean(0))
    ids = [f"{c}:{p}" for c, p in zip(genotypes.variants.chrom, genotypes.variants.pos)]
    causal = json.loads(files.metadata.read_text())["trait"]["causal_variants"]
    is_causal = np.isin(ids, causal)
    assert is_causal.sum() == 5  # every causal SNP is one of the written SNPs
    assert diff[is_causal].mean() > 2 * diff[~is_causal].mean()


def _hudson_fst(a: np.ndarray, b: np.ndarray) -> float:
    """Hudson's Fst between two groups of dosages [n, S] (ratio of averages)."""
    p1, p2 = a.mean(0) / 2, b.mean(0) / 2
    n1, n2 = 2 * len(a), 2 * len(b)
    num = (p1 - p2) ** 2 - p1 * (1 - p1) / (n1 - 1) - p2 * (1 - p2) / (n2 - 1)
    den = p1 * (1 - p2) + p2 * (1 - p1)
    return float(num.sum() / den.sum())


def test_populations_are_structured(tiny):
    dosages = read_vcf(tiny.vcf, progress=False).dosages.astype(float)
    pop = read_panel(tiny.panel).columns["pop"]
    yri, chb = dosages[pop == "YRI"], dosages[pop == "CHB"]
    half = len(yri) // 2
    between = _hudson_fst(yri, chb)
    within = _hudson_fst(yri[:half], yri[half:])
    assert between > 0.05 and between > 4 * abs(within)


def test_bad_parameters_are_input_errors():
    with pytest.raises(InputError, match="prevalence"):
        SimulationParams(prevalence=1.5)
    with pytest.raises(InputError, match="no population XYZ"):
        simulate.simulate_contig(SimulationParams(populations=("YRI", "XYZ")), seed=1)
    with pytest.raises(InputError, match="unknown demographic model"):
        simulate.simulate_contig(SimulationParams(model="NoSuchModel"), seed=1)


def test_presets_have_the_promised_scale():
    assert set(PRESETS) >= {"tiny", "demo", "bench"}
    bench = PRESETS["bench"]
    assert len(bench.populations) >= 3 and bench.people_per_pop == 1000
    demo = PRESETS["demo"]
    assert demo.trait and len(demo.populations) >= 3
    # Gene count of the demo BED, from the gene sampler alone (no simulation).
    chrom, *_ = simulate.synthetic_genes(demo, np.random.default_rng(0))
    assert 50 <= len(chrom) <= 150


def test_cache_location_and_unwritable_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(simulate.CACHE_ENV, str(tmp_path / "env-cache"))
    assert simulate.default_cache_dir() == tmp_path / "env-cache"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="not writable"):
        files = simulate_cohort(tmp_path / "out", dataclasses.replace(TINY, trait=False),
                                cache_dir=blocker, progress=False)
    assert not files.cached and files.vcf.is_file() and files.bed.is_file()
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted([*simulate.COHORT_FILES, MARKER])
