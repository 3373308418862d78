"""Imputation accuracy on the LCT region: the masked-diffusion model beside Beagle 5.4 and a
per-population-frequency baseline, by minor-allele-frequency bin.

The reference panel is the run's training people (phased); the held-out (test) people keep 1 SNP
in `--observe-every` (from `--offsets`: several offsets are several runs, averaged) and the rest
is imputed. Accuracy: dosage r^2 over the hidden SNPs of a bin
(squared correlation of true and imputed dosage over every person x SNP of the bin, pooled); MAF
from the reference panel. The model's dosages (`sampling.impute.DOSAGES`): "posterior", one model
call from what is observed (the `genodiff impute` default), and "draws", the expected values over
`--draws` fillings, printed beside the drawn alleles' mean over the same draws. Beagle (Debian
package `beagle`, 5.4 = 22Jul22) is installed with apt when missing; its dosage is the DS field.
Writes a JSON and prints a table:

    python benchmarks/impute_lct.py --workdir runs/lct_masked/train \
        --json docs/bench/impute_lct.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from genodiff_jax.data import io, writers
from genodiff_jax.data.loader import load_prepared
from genodiff_jax.families import family_of
from genodiff_jax.sampling.impute import estimated_r2, imputation_settings, impute_tokens
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sampling.tokens import UNKNOWN
from genodiff_jax.train.trained import load_trained

BINS = {"maf>=0.05": (0.05, 0.51), "0.01-0.05": (0.01, 0.05), "<0.01": (0.0, 0.01)}


def r2_by_bin(truth: np.ndarray, dosage: np.ndarray, maf: np.ndarray,
              hidden: np.ndarray) -> dict:
    """Pooled dosage r^2 over the hidden columns of each MAF bin (None where undefined)."""
    out = {}
    for name, (lo, hi) in BINS.items():
        cols = hidden & (maf >= lo) & (maf < hi)
        t, d = truth[:, cols].ravel(), dosage[:, cols].ravel()
        ok = cols.any() and t.std() > 0 and d.std() > 0
        out[name] = float(np.corrcoef(t, d)[0, 1] ** 2) if ok else None
        out[f"{name} n_snps"] = int(cols.sum())
    return out


def mean_by_bin(per_site: np.ndarray, maf: np.ndarray, hidden: np.ndarray) -> dict:
    """The mean of a per-site figure (e.g. the estimated r^2, DR2) over each bin's hidden SNPs."""
    return {name: float(per_site[hidden & (maf >= lo) & (maf < hi)].mean())
            for name, (lo, hi) in BINS.items() if (hidden & (maf >= lo) & (maf < hi)).any()}


def population_frequencies(ref: np.ndarray, ref_labels: np.ndarray, labels: np.ndarray,
                           observed: np.ndarray) -> np.ndarray:
    """2 x the allele frequency of each person's population in the panel (the baseline)."""
    freq = {c: ref[ref_labels == c].mean(axis=(0, 1)) for c in np.unique(ref_labels)}
    dosage = np.stack([2 * freq[c] for c in labels])
    return np.where(observed, np.nan, dosage)


def run_beagle(ref_haps: np.ndarray, target_haps: np.ndarray, variants: io.Variants,
               observed: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Beagle's imputed dosages [n, S] for the target people, its DR2 [S] and its wall time."""
    if shutil.which("beagle") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "beagle"], check=True,
                       capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        writers.write_vcf(tmp / "ref.vcf.gz", variants,
                          [f"R{i}" for i in range(len(ref_haps))], ref_haps.transpose(0, 2, 1),
                          phased=True)
        target_ids = [f"T{i}" for i in range(len(target_haps))]
        writers.write_vcf(tmp / "gt.vcf.gz", variants.take(observed), target_ids,
                          target_haps[:, :, observed].transpose(0, 2, 1), phased=True)
        t0 = time.perf_counter()
        subprocess.run(["beagle", f"ref={tmp / 'ref.vcf.gz'}", f"gt={tmp / 'gt.vcf.gz'}",
                        f"out={tmp / 'out'}", "impute=true", f"nthreads={threads}"],
                       check=True, capture_output=True)
        seconds = time.perf_counter() - t0
        from cyvcf2 import VCF

        pos_index = {int(p): j for j, p in enumerate(variants.pos)}
        dosage = np.full((len(target_haps), len(variants)), np.nan, np.float32)
        dr2 = np.full(len(variants), np.nan, np.float32)
        for record in VCF(str(tmp / "out.vcf.gz")):
            j = pos_index.get(record.POS)
            if j is not None:
                dosage[:, j] = record.format("DS")[:, 0]
                dr2[j] = record.INFO.get("DR2", np.nan)
    return dosage, dr2, seconds


def compare(args, trained, data, offset: int) -> tuple[dict, dict, dict]:
    """The model's dosages, per-population frequencies and Beagle with the held-out people
    keeping the SNPs `offset`, `offset + observe_every`, ...: r^2 by bin, seconds and the mean
    estimated r^2 (DR2) by bin of each method."""
    ref, truth = np.asarray(data.tokens("train")), np.asarray(data.tokens("test"))
    S = truth.shape[2]
    observed = np.zeros(S, bool)
    observed[offset::args.observe_every] = True
    hidden = ~observed
    af = ref.mean(axis=(0, 1))
    maf = np.minimum(af, 1 - af)
    true_dosage = truth.sum(axis=1).astype(np.float32)
    known = np.where(observed, truth, UNKNOWN).astype(np.int8)

    results, seconds, estimated = {}, {}, {}
    settings = imputation_settings(trained, SamplingSettings(steps=args.steps,
                                                             panel_size=args.panel_size))
    rows = {"unconditional": ("model (unconditional)", np.full(len(truth), trained.num_classes)),
            "population": ("model (population given)", data.test.labels)}
    for name, labels in (rows.values() if args.labels == "both" else [rows[args.labels]]):
        labels = np.asarray(labels, np.int32)
        per_snp = family_of(trained.process).inputs(trained, data, labels, settings, known)
        for dosage in args.dosages.split(","):
            row = f"{name}, {dosage}"
            draws = args.draws if dosage == "draws" else 0
            t0 = time.perf_counter()
            filled, haplotype_dosages = impute_tokens(trained, data, known, labels, settings,
                                                      draws=draws, dosage=dosage,
                                                      per_snp=per_snp)
            imputed = haplotype_dosages.sum(axis=1)
            seconds[row] = time.perf_counter() - t0
            results[row] = r2_by_bin(true_dosage, imputed, maf, hidden)
            estimated[row] = mean_by_bin(estimated_r2(haplotype_dosages), maf, hidden)
            if draws:
                results[f"{row}: drawn alleles' mean"] = r2_by_bin(
                    true_dosage, filled.sum(axis=2).mean(axis=0), maf, hidden)
    base = population_frequencies(ref, data.train.labels, data.test.labels, observed)
    results["population frequencies"] = r2_by_bin(true_dosage, np.nan_to_num(base), maf, hidden)
    if not args.no_beagle:
        dosage, dr2, seconds["beagle 5.4"] = run_beagle(ref, truth, data.variants, observed,
                                                        args.threads)
        results["beagle 5.4"] = r2_by_bin(true_dosage, np.nan_to_num(dosage), maf, hidden)
        estimated["beagle 5.4"] = mean_by_bin(np.nan_to_num(dr2), maf, hidden)
    return results, seconds, estimated


def mean_over(tables: list[dict]) -> dict:
    """Averaged over several offsets' tables, figure by figure (nested dicts of numbers; None
    where any offset has None)."""
    out = {}
    for key, first in tables[0].items():
        values = [t[key] for t in tables]
        if isinstance(first, dict):
            out[key] = mean_over(values)
        else:
            out[key] = None if any(v is None for v in values) else float(np.mean(values))
    return out


def print_table(results: dict, seconds: dict, estimated: dict) -> None:
    print(" | ".join(["method", *BINS, "seconds"]))
    for name, r in results.items():
        cells = [f"{r[b]:.3f}" if r[b] is not None else "-" for b in BINS]
        print(" | ".join([name, *cells, f"{seconds.get(name, 0):.0f}"]))
    print("mean estimated r^2 (DR2) over each bin's hidden SNPs:")
    for name, by_bin in estimated.items():
        print(" | ".join([name, *(f"{by_bin.get(b, float('nan')):.3f}" for b in BINS)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=Path, help="masked-diffusion run")
    parser.add_argument("--observe-every", type=int, default=10)
    parser.add_argument("--offsets", default="0",
                        help="comma-separated offsets of the observed grid (0 to observe-every "
                        "- 1), each a run, averaged: which SNPs are observed moves the rare bin "
                        "by several hundredths")
    parser.add_argument("--draws", type=int, default=4, help="model fillings averaged")
    parser.add_argument("--steps", type=int, default=None, help="unmasking steps")
    parser.add_argument("--panel-size", type=int, default=None,
                        help="reference rows a panel run reads (default: the run's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--labels", choices=["both", "unconditional", "population"],
                        default="both", help="the model's rows: without labels, with each "
                        "person's population, or both")
    parser.add_argument("--dosages", default="posterior,draws",
                        help="the model's dosages to measure (sampling.impute.DOSAGES)")
    parser.add_argument("--no-beagle", action="store_true")
    args = parser.parse_args()
    offsets = [int(o) for o in args.offsets.split(",")]
    if not all(0 <= o < args.observe_every for o in offsets):
        parser.error(f"--offsets must be in [0, {args.observe_every - 1}]")

    trained = load_trained(args.workdir)
    data = load_prepared(trained.run["data_dir"])
    runs = {}
    for offset in offsets:
        runs[offset] = compare(args, trained, data, offset)
        if len(offsets) > 1:
            print(f"observed SNPs {offset}, {offset + args.observe_every}, ...:")
            print_table(*runs[offset])
    results, seconds, estimated = (mean_over([r[k] for r in runs.values()]) for k in range(3))
    if len(offsets) > 1:
        print(f"mean over the {len(offsets)} offsets:")
    print_table(results, seconds, estimated)
    ref, truth = data.tokens("train"), data.tokens("test")
    record = {"command": " ".join(sys.argv), "workdir": str(args.workdir),
              "observe_every": args.observe_every, "offsets": offsets, "draws": args.draws,
              "steps": args.steps, "panel_size": args.panel_size, "dosages": args.dosages,
              "n_reference": int(len(ref)), "n_target": int(len(truth)),
              "n_snps": int(np.shape(truth)[2]),
              "results": results, "estimated_r2": estimated, "seconds": seconds,
              "by_offset": {str(o): {"results": r, "seconds": t, "estimated_r2": e}
                            for o, (r, t, e) in runs.items()},
              "machine": {"python": platform.python_version(), "jax": jax.__version__,
                          "cpu": platform.processor() or platform.machine()}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
