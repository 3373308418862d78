"""Shared fixtures: the real 1000 Genomes region (skipped when ../shared is absent)
and tiny VCFs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Most of the suite's programs are tiny and compiled once or twice each, so XLA's optimisation
# passes cost more than they save: without them a pinned panel train step took 24 s instead of
# 39 (CPU, jax 0.10.2; the same losses to 1e-5). In the environment, so `genodiff` processes
# started by tests inherit it; `JAX_DISABLE_MOST_OPTIMIZATIONS=0 make test` turns it off, and
# a GPU run (`JAX_PLATFORMS=cuda pytest -m gpu`) keeps the passes. A test that computes at scale
# is marked `xla_optimized` (the LCT two-sample test took 170 s without the passes, 26 with).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS",
                      "1" if os.environ["JAX_PLATFORMS"] == "cpu" else "0")
# read as jax reads it (`jax._src.config.bool_env`), so this process and its children agree
WITHOUT_XLA_PASSES = (os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower()
                      in ("y", "yes", "t", "true", "on", "1"))


def _compile_once_per_process() -> None:
    """A persistent compilation cache for this test process alone (each xdist worker its own
    folder, removed at exit): many tests train and sample the same smoke configs, whose programs
    then compile once. Set with jax.config, not the environment, so the `genodiff` processes the
    tests start (some killed mid-run) never share or half-write it. XLA's optimisation passes
    as `WITHOUT_XLA_PASSES` says (above)."""
    import atexit
    import shutil
    import tempfile

    import jax

    folder = tempfile.mkdtemp(prefix="genodiff-test-jax-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_disable_most_optimizations", WITHOUT_XLA_PASSES)


_compile_once_per_process()


@pytest.fixture(autouse=True)
def _xla_passes_for_marked_tests(request):
    """XLA's optimisation passes back on for the duration of a test marked `xla_optimized`."""
    if request.node.get_closest_marker("xla_optimized") is None:
        yield
        return
    import jax

    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", WITHOUT_XLA_PASSES)


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LCT_VCF = SHARED_DATA / "1kg_lct_chr2.vcf.gz"
LCT_PANEL = SHARED_DATA / "1kg_lct_chr2.panel"
GENES_BED = SHARED_DATA / "genes_grch37.bed"


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` skip unless JAX runs on a GPU
    (this file defaults JAX_PLATFORMS to cpu)."""
    marked = [item for item in items if "gpu" in item.keywords]
    if not marked:
        return
    import jax

    if jax.default_backend() != "gpu":
        skip = pytest.mark.skip(reason="needs a GPU: run with JAX_PLATFORMS=cuda "
                                       "where there is one")
        for item in marked:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not LCT_VCF.is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (it sits beside the project in CI; "
                    "a user's clone has no ../shared)")
    return SHARED_DATA


def write_text_vcf(path: Path, samples: list[str], rows: list[tuple]) -> Path:
    """A plain-text VCF from rows (chrom, pos, id, ref, alt, [gt strings])."""
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=1>", "##contig=<ID=2>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                        *samples])]
    for chrom, pos, vid, ref, alt, gts in rows:
        lines.append("\t".join([str(chrom), str(pos), vid, ref, alt, ".", "PASS", ".", "GT", *gts]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def small_cohort(tmp_path: Path) -> dict:
    """A random 3-population cohort (40 people, 300 SNPs on two chromosomes)
    as VCF + panel + BED."""
    from genodiff_jax.data import io, tables, writers

    rng = np.random.default_rng(7)
    n, s = 40, 300
    pops = np.repeat(["AAA", "BBB", "CCC", "DDD"], 10)
    freqs = rng.uniform(0.05, 0.6, size=(4, s))
    haps = (rng.random((n, s, 2)) < np.repeat(freqs, 10, axis=0)[:, :, None]).astype(np.int8)
    chrom = np.array(["1"] * 200 + ["2"] * 100)
    pos = np.concatenate([np.arange(200) * 100 + 1000, np.arange(100) * 100 + 1000])
    variants = io.Variants(chrom, pos.astype(np.int64), np.array([f"rs{i}" for i in range(s)]),
                           np.array(["A"] * s), np.array(["G"] * s))
    samples = [f"S{i:03d}" for i in range(n)]
    writers.write_vcf(tmp_path / "c.vcf.gz", variants, samples, haps, phased=True)
    tables.write_panel(tmp_path / "c.panel", samples, {"pop": pops, "super_pop": np.where(
        np.isin(pops, ["AAA", "BBB"]), "X", "Y")})
    tables.write_bed(tmp_path / "g.bed", ["1", "1", "1", "2"], [900, 6000, 12000, 500],
                 [5000, 11000, 21500, 12000], ["G1", "G2", "G3", "G4"])
    return {"vcf": tmp_path / "c.vcf.gz", "panel": tmp_path / "c.panel", "bed": tmp_path / "g.bed",
            "haps": haps, "variants": variants, "samples": samples, "dir": tmp_path}


def tiny_trained_run(tmp_path_factory, name: str, config: str):
    """A fixture body: the tiny simulated cohort, prepared, and a run of `config` on it, in a
    folder `name` (cohort/, data/, train/); yields the folder."""
    from genodiff_jax import cli

    root = tmp_path_factory.mktemp(name)
    mp = pytest.MonkeyPatch()
    mp.setenv("GENODIFF_CACHE", str(root / "cache"))
    assert cli.main(["simulate", "--preset", "tiny", "--out", str(root / "cohort"), "--quiet"]) == 0
    assert cli.main(["prepare", "--quiet", "--vcf", str(root / "cohort" / "cohort.vcf.gz"),
                     "--panel", str(root / "cohort" / "cohort.panel"),
                     "--genes", str(root / "cohort" / "genes.bed"), "--out",
                     str(root / "data")]) == 0
    assert cli.main(["train", "--data", str(root / "data"), "--workdir", str(root / "train"),
                     "--config", config, "--quiet"]) == 0
    yield root
    mp.undo()

