"""The embedded cohort: a multi-population genotype cohort simulated with stdpopsim/msprime.

`simulate_cohort` runs a stdpopsim demographic model of Homo sapiens (default OutOfAfrica_3G09: YRI,
CEU, CHB) on generic contigs with the species' mean mutation and recombination rates (uniform, no
genetic map, nothing downloaded), keeps biallelic SNPs, lays a synthetic gene BED over the contigs
and, optionally, adds a liability-threshold case/control trait simulated with tstrait. It writes the
same three files that real data comes as (phased bgzipped VCF, panel, gene BED), so the rest of the
pipeline cannot tell the difference. Results are cached by a hash of the parameters and software
versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.atomic import atomic_dir, atomic_file, check_output, write_marker
from genodiff_jax.data.io import Variants
from genodiff_jax.data.tables import write_bed, write_panel
from genodiff_jax.data.writers import VcfWriter
from genodiff_jax.errors import InputError

SPECIES = "HomSap"
VCF_NAME, PANEL_NAME, BED_NAME, META_NAME = ("cohort.vcf.gz", "cohort.panel", "genes.bed",
                                             "simulation.json")
COHORT_FILES = (VCF_NAME, PANEL_NAME, BED_NAME, META_NAME)
CACHE_ENV = "GENODIFF_CACHE"
COHORT_KIND = "cohort"  # the marker kind of a `genodiff simulate` folder
# Bumped whenever the output for the same parameters changes, so stale cache entries are not reused.
FORMAT_VERSION = 1

# Log-normal spreads of gene body and intergenic gap lengths (medians are parameters).
GENE_LENGTH_SIGMA = 0.5
GENE_GAP_SIGMA = 0.8
MIN_GENE_LENGTH = 1_000

# 1000 Genomes population -> continental super-population; other names map to themselves.
SUPER_POPULATIONS = {
    **dict.fromkeys(("YRI", "LWK", "GWD", "MSL", "ESN", "ASW", "ACB"), "AFR"),
    **dict.fromkeys(("CEU", "TSI", "FIN", "GBR", "IBS"), "EUR"),
    **dict.fromkeys(("CHB", "JPT", "CHS", "CDX", "KHV"), "EAS"),
    **dict.fromkeys(("MXL", "PUR", "CLM", "PEL"), "AMR"),
    **dict.fromkeys(("GIH", "PJL", "BEB", "STU", "ITU"), "SAS"),
}


@dataclasses.dataclass(frozen=True)
class SimulationParams:
    """Everything that determines the simulated cohort (and so its cache key)."""

    people_per_pop: int = 100
    populations: tuple[str, ...] = ("YRI", "CEU", "CHB")
    model: str = "OutOfAfrica_3G09"
    num_contigs: int = 2
    contig_length: int = 1_000_000
    seed: int = 0
    trait: bool = False
    h2: float = 0.6  # heritability of the liability
    prevalence: float = 0.3  # share of cases (the ALS cohort has 0.3067)
    num_causal: int = 100
    causal_min_maf: float = 0.05  # causal SNPs are common ones, so the trait is learnable from PCA
    gene_length: int = 20_000  # median gene body (log-normal)
    gene_gap: int = 6_000  # median intergenic gap (log-normal)

    def __post_init__(self):
        object.__setattr__(self, "populations", tuple(self.populations))
        checks = [
            (self.people_per_pop >= 1, "people_per_pop must be >= 1"),
            (len(self.populations) >= 1, "at least one population is needed"),
            (len(set(self.populations)) == len(self.populations), "populations repeat"),
            (self.num_contigs >= 1, "num_contigs must be >= 1"),
            (self.contig_length >= 10 * MIN_GENE_LENGTH, "contig_length must be >= 10 kb"),
            (0 < self.h2 <= 1, "h2 must be in (0, 1]"),
            (0 < self.prevalence < 1, "prevalence must be in (0, 1)"),
            (self.num_causal >= 1, "num_causal must be >= 1"),
            (0 <= self.causal_min_maf < 0.5, "causal_min_maf must be in [0, 0.5)"),
            (self.gene_length >= MIN_GENE_LENGTH, f"gene_length must be >= {MIN_GENE_LENGTH}"),
            (self.gene_gap >= 1, "gene_gap must be >= 1"),
            (0 <= self.seed < 2**63, "seed must be a non-negative integer"),
        ]
        for ok, problem in checks:
            if not ok:
                raise InputError(None, f"bad simulation parameters: {problem}")

    @property
    def contigs(self) -> dict[str, int]:
        """Contig names ("1", "2", ...) and lengths."""
        return {str(k + 1): self.contig_length for k in range(self.num_contigs)}


PRESETS: dict[str, SimulationParams] = {
    # Unit tests: a second or two.
    "tiny": SimulationParams(people_per_pop=20, num_contigs=2, contig_length=200_000, trait=True,
                             num_causal=20),
    # `genodiff run` / CI: ~10k SNPs, ~65 genes, a few seconds.
    "demo": SimulationParams(people_per_pop=100, num_contigs=2, contig_length=1_000_000,
                             trait=True),
    # Throughput benchmarks: 3,000 people, ~240k SNPs.
    "bench": SimulationParams(people_per_pop=1000, num_contigs=4, contig_length=5_500_000,
                              trait=True, num_causal=500),
}


@dataclasses.dataclass(frozen=True)
class CohortFiles:
    """Paths of a simulated cohort; `cached` says whether it was copied from the cache."""

    vcf: Path
    panel: Path
    bed: Path
    metadata: Path
    cached: bool = False


def default_cache_dir() -> Path:
    """$GENODIFF_CACHE, else ~/.cache/genodiff-jax."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genodiff-jax"


def _versions() -> dict[str, str]:
    import msprime
    import stdpopsim
    import tskit
    import tstrait

    return {"msprime": msprime.__version__, "stdpopsim": stdpopsim.__version__,
            "tskit": tskit.__version__, "tstrait": str(tstrait.__version__)}


def params_key(params: SimulationParams) -> str:
    """Cache key: a hash of the parameters, the output format and the simulators' versions."""
    blob = json.dumps({"params": dataclasses.asdict(params), "format": FORMAT_VERSION,
                       "versions": _versions()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def simulate_cohort(out_dir: str | os.PathLike, params: SimulationParams, *,
                    cache_dir: str | os.PathLike | None = None, overwrite: bool = False,
                    progress: bool = True) -> CohortFiles:
    """Write `cohort.vcf.gz`, `cohort.panel`, `genes.bed`, `simulation.json` into `out_dir`.

    The cohort is simulated once into `<cache_dir>/cohorts/<key>/` (through a temporary folder, so a
    killed run leaves nothing) and copied from there; the same parameters later only copy.
    """
    out_dir = Path(out_dir)
    # The cohort's files are written one by one into out_dir and nothing else there is touched,
    # so an earlier cohort holding other files is fine (merge).
    check_output(out_dir, COHORT_KIND, overwrite=overwrite, merge=True)
    entry = Path(cache_dir or default_cache_dir()).expanduser() / "cohorts" / params_key(params)
    cached = all((entry / name).is_file() for name in COHORT_FILES)
    if not cached:
        try:  # probe by writing: os.access says yes to root even on read-only mounts
            entry.parent.mkdir(parents=True, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(prefix=".probe.", dir=entry.parent))
            cache_ok = True
        except OSError:
            cache_ok = False
        if cache_ok:
            with atomic_dir(entry, "simulation", overwrite=True) as tmp:
                _simulate_into(tmp, params, progress)
        else:  # read-only cache: simulate without keeping a copy
            warnings.warn(f"cache {entry.parent} is not writable; simulating without caching",
                          stacklevel=2)
            out_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".simulate.", dir=out_dir) as tmp:
                _simulate_into(Path(tmp), params, progress)
                return _copy_cohort(Path(tmp), out_dir, cached=False)
    return _copy_cohort(entry, out_dir, cached=cached)


def _copy_cohort(src: Path, out_dir: Path, cached: bool = False) -> CohortFiles:
    """Copy whichever cohort files `src` has into `out_dir`, each atomically (other files in
    `out_dir` stay), and mark the folder as a cohort."""
    if out_dir.is_file() or out_dir.is_symlink() and not out_dir.is_dir():
        out_dir.unlink()  # a file in the way, which check_output let go (--overwrite)
    copied = [name for name in COHORT_FILES if (src / name).is_file()]
    for name in copied:
        with atomic_file(out_dir / name) as tmp:
            shutil.copyfile(src / name, tmp)
    write_marker(out_dir, COHORT_KIND, files=sorted(copied))
    return CohortFiles(out_dir / VCF_NAME, out_dir / PANEL_NAME, out_dir / BED_NAME,
                       out_dir / META_NAME, cached=cached)


# ---------------------------------------------------------------------------------------------
# The simulation
# ---------------------------------------------------------------------------------------------

def _seed_of(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0]) or 1


def _simulate_into(folder: Path, params: SimulationParams, progress: bool) -> None:
    """Simulate and write the four cohort files into `folder`."""
    # Independent streams: contig k's seed does not depend on num_contigs, nor genes on the trait.
    contig_seq, gene_seq, trait_seq = np.random.SeedSequence(params.seed).spawn(3)
    contig_seeds = [_seed_of(s) for s in contig_seq.spawn(params.num_contigs)]

    tss = [simulate_contig(params, seed)
           for seed in tqdm(contig_seeds, desc="simulating contigs", unit="contig",
                            disable=not progress, leave=False)]
    samples, pops = _sample_table(tss[0])
    keep, alt_freq = zip(*(_biallelic_snps(ts) for ts in tss))
    n_sites = sum(ts.num_sites for ts in tss)
    n_kept = int(sum(k.sum() for k in keep))
    if n_kept == 0:
        raise InputError(None, "the simulation produced no biallelic SNP; raise contig_length")

    columns = {"pop": pops, "super_pop": [SUPER_POPULATIONS.get(p, p) for p in pops]}
    meta = {"params": dataclasses.asdict(params), "versions": _versions(),
            "format": FORMAT_VERSION, "species": SPECIES, "contigs": params.contigs,
            "n_samples": len(samples), "n_sites_simulated": n_sites, "n_variants": n_kept}
    if params.trait:
        is_case, trait_meta = simulate_trait(tss, keep, alt_freq, params, trait_seq)
        columns["trait"] = np.where(is_case, "case", "control")
        meta["trait"] = trait_meta

    genes = synthetic_genes(params, np.random.default_rng(gene_seq))
    meta["n_genes"] = len(genes[0])
    write_bed(folder / BED_NAME, *genes)
    write_panel(folder / PANEL_NAME, samples, columns)
    _write_vcf(folder / VCF_NAME, tss, keep, samples, params, progress)
    with atomic_file(folder / META_NAME) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")


def simulate_contig(params: SimulationParams, seed: int):
    """One generic contig (uniform species-mean rates) as a tskit TreeSequence with mutations."""
    import stdpopsim

    species = stdpopsim.get_species(SPECIES)
    try:
        model = species.get_demographic_model(params.model)
    except ValueError:
        known = ", ".join(m.id for m in species.demographic_models)
        raise InputError(None, f"unknown demographic model '{params.model}' "
                               f"(known: {known})") from None
    names = [p.name for p in model.populations]
    missing = [p for p in params.populations if p not in names]
    if missing:
        raise InputError(None, f"model {params.model} has no population {', '.join(missing)} "
                               f"(it has {', '.join(names)})")
    contig = species.get_contig(length=params.contig_length)
    engine = stdpopsim.get_engine("msprime")
    with warnings.catch_warnings():
        # The model was fitted with its own mutation rate; we use the species mean on purpose.
        warnings.filterwarnings("ignore", message="The demographic model has mutation rate")
        return engine.simulate(model, contig,
                               dict.fromkeys(params.populations, params.people_per_pop),
                               seed=seed)


def _sample_table(ts) -> tuple[list[str], list[str]]:
    """Sample ids (`YRI_0001`, numbered within population) and population names,
    individual order."""
    names = [ts.population(p).metadata["name"] for p in ts.individuals_population]
    seen: dict[str, int] = {}
    ids = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        ids.append(f"{name}_{seen[name]:04d}")
    return ids, names


def _biallelic_snps(ts) -> tuple[np.ndarray, np.ndarray]:
    """Per site: kept (exactly two alleles, both seen in the samples) and the ALT frequency."""
    keep = np.zeros(ts.num_sites, bool)
    freq = np.zeros(ts.num_sites)
    n = ts.num_samples
    for v in ts.variants(copy=False):
        if v.num_alleles == 2:
            count = int(v.genotypes.sum())
            keep[v.site.id] = 0 < count < n  # a back mutation can leave a site monomorphic
            freq[v.site.id] = count / n
    return keep, freq


def simulate_trait(tss: list, keep: tuple[np.ndarray, ...], alt_freq: tuple[np.ndarray, ...],
                   params: SimulationParams,
                   seq: np.random.SeedSequence) -> tuple[np.ndarray, dict]:
    """Liability-threshold case/control labels: the top `prevalence` of a tstrait phenotype
    are cases.

    Causal sites are drawn among the kept SNPs with MAF >= causal_min_maf, over all contigs, which
    are concatenated into one tree sequence for tstrait.
    """
    import tstrait

    pick_seq, tstrait_seq = seq.spawn(2)
    offsets = np.cumsum([0] + [ts.num_sites for ts in tss])
    eligible = np.concatenate([
        offset + np.flatnonzero(k & (np.minimum(f, 1 - f) >= params.causal_min_maf))
        for offset, k, f in zip(offsets, keep, alt_freq)
    ])
    if eligible.size == 0:
        raise InputError(None, f"no SNP with MAF >= {params.causal_min_maf} for the trait; "
                               "raise contig_length or people_per_pop")
    num_causal = min(params.num_causal, eligible.size)
    causal = np.sort(np.random.default_rng(pick_seq).choice(eligible, num_causal, replace=False))
    ts = tss[0].concatenate(*tss[1:]) if len(tss) > 1 else tss[0]
    assert ts.num_sites == offsets[-1]  # site ids of contig k start at offsets[k]
    model = tstrait.trait_model(distribution="normal", mean=0, var=1)
    result = tstrait.sim_phenotype(ts, model, causal_sites=causal.tolist(), h2=params.h2,
                                   random_seed=_seed_of(tstrait_seq))
    phenotype = result.phenotype.sort_values("individual_id")["phenotype"].to_numpy()
    n = len(phenotype)
    n_cases = int(np.clip(round(params.prevalence * n), 1, n - 1))
    is_case = np.zeros(n, bool)
    is_case[np.argsort(-phenotype, kind="stable")[:n_cases]] = True
    # Causal SNPs as "chrom:pos" (VCF coordinates), so studies can check what a model preserved.
    contig = np.searchsorted(offsets, causal, side="right") - 1
    names = list(params.contigs)
    causal_ids = [f"{names[k]}:{int(tss[k].site(int(i - offsets[k])).position) + 1}"
                  for k, i in zip(contig, causal)]
    return is_case, {"n_causal": num_causal, "n_cases": n_cases, "n_controls": n - n_cases,
                     "causal_variants": causal_ids}


def synthetic_genes(params: SimulationParams, rng: np.random.Generator
                    ) -> tuple[list[str], list[int], list[int], list[str]]:
    """Non-overlapping genes tiled over every contig: log-normal lengths and gaps,
    names SIMG00001..."""
    chrom, start, end = [], [], []
    for name, length in params.contigs.items():
        pos = _draw(rng, params.gene_gap, GENE_GAP_SIGMA, 1)
        while True:
            gene = _draw(rng, params.gene_length, GENE_LENGTH_SIGMA, MIN_GENE_LENGTH)
            if pos + gene > length:
                break
            chrom.append(name)
            start.append(pos)
            end.append(pos + gene)
            pos += gene + _draw(rng, params.gene_gap, GENE_GAP_SIGMA, 1)
    names = [f"SIMG{i + 1:05d}" for i in range(len(start))]
    return chrom, start, end, names


def _draw(rng: np.random.Generator, median: int, sigma: float, minimum: int) -> int:
    return max(minimum, int(round(rng.lognormal(np.log(median), sigma))))


def _write_vcf(path: Path, tss: list, keep: tuple[np.ndarray, ...], samples: list[str],
               params: SimulationParams, progress: bool, chunk_size: int = 2048) -> None:
    """Stream kept SNPs into a phased VCF, `chunk_size` variants at a time
    (never the whole matrix)."""
    n_kept = int(sum(k.sum() for k in keep))
    bar = tqdm(total=n_kept, desc=f"writing {path.name}", unit=" variants", disable=not progress,
               leave=False)
    with VcfWriter(path, samples, contigs=params.contigs, phased=True) as writer, bar:
        for chrom, ts, kept in zip(params.contigs, tss, keep):
            # Haplotype columns of each individual: sample nodes -> genotype columns.
            column = np.full(ts.num_nodes, -1)
            column[ts.samples()] = np.arange(ts.num_samples)
            hap_index = column[ts.individuals_nodes]  # [N, 2]
            for pos, ref, alt, haps_SxH in _kept_chunks(ts, kept, chunk_size):
                n = len(pos)
                variants = Variants(np.full(n, chrom), pos, np.full(n, "."), ref, alt)
                writer.write(variants, haps_SxH[:, hap_index].transpose(1, 0, 2))  # [N, n, 2]
                bar.update(n)


def _kept_chunks(ts, kept: np.ndarray, chunk_size: int):
    """Yield (1-based positions, REF, ALT, int8 haplotypes [n, 2N]) for runs of kept sites."""
    buffer = np.empty((chunk_size, ts.num_samples), np.int8)  # reused: consumers must not keep it
    fields: list[tuple[int, str, str]] = []
    for v in ts.variants(copy=False):
        if not kept[v.site.id]:
            continue
        buffer[len(fields)] = v.genotypes
        fields.append((int(v.site.position) + 1, v.alleles[0], v.alleles[1]))
        if len(fields) == chunk_size:
            yield _chunk(fields, buffer)
            fields = []
    if fields:
        yield _chunk(fields, buffer)


def _chunk(fields: list[tuple[int, str, str]], buffer: np.ndarray):
    pos, ref, alt = zip(*fields)
    return np.array(pos, np.int64), np.array(ref), np.array(alt), buffer[:len(fields)]
