"""`genodiff simulate` and `genodiff prepare`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from genodiff_jax.cli.base import add_overwrite_flag, command


def _simulate_args(p: argparse.ArgumentParser) -> None:
    from genodiff_jax.data.simulate import PRESETS

    p.add_argument("--out", required=True, type=Path, help="output folder (cohort.vcf.gz, "
                   "cohort.panel, genes.bed)")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="cohort size preset")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's)")
    p.add_argument("--people-per-pop", type=int, default=None, help="diploid people per population")
    p.add_argument("--contig-length", type=int, default=None, help="base pairs per contig")
    p.add_argument("--num-contigs", type=int, default=None, help="number of contigs (chromosomes)")
    p.add_argument("--no-trait", action="store_true", help="no tstrait case/control column")
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _simulation_params(args: argparse.Namespace):
    from genodiff_jax.data.simulate import PRESETS

    overrides = {"seed": args.seed, "people_per_pop": args.people_per_pop,
                 "contig_length": args.contig_length, "num_contigs": args.num_contigs}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.no_trait:
        overrides["trait"] = False
    return dataclasses.replace(PRESETS[args.preset], **overrides)


@command("simulate", "simulate the embedded multi-population cohort (stdpopsim + msprime)",
         _simulate_args)
def _simulate(args: argparse.Namespace) -> None:
    from genodiff_jax.data.simulate import simulate_cohort

    files = simulate_cohort(args.out, _simulation_params(args), overwrite=args.overwrite,
                            progress=not args.quiet)
    print(f"wrote {files.vcf}, {files.panel}, {files.bed}")


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vcf", required=True, type=Path,
                   help="genotypes: .vcf, .vcf.gz, .bcf, or a PLINK .bed (with .bim/.fam beside)")
    p.add_argument("--panel", required=True, type=Path,
                   help="sample table with header: sample, pop, super_pop[, trait ...]")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--genes", type=Path, help="gene BED (SNPs -> genes, DESIGN 1.1)")
    where.add_argument("--window", type=int, help="no annotation: genes = runs of N SNPs")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    p.add_argument("--label", default="pop", help="panel column to condition on (pop, super_pop, "
                   "trait, ...)")
    p.add_argument("--test-fraction", type=float, default=0.1, help="held-out share, stratified")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--strict", action="store_true", help="missing calls are an error, not filled")
    p.add_argument("--components", default="paper", choices=["paper", "all"],
                   help="components per gene: the paper's 8/4/1 rule, or all (lossless)")
    p.add_argument("--tokens", default="auto", choices=["auto", "haplotypes", "genotypes"],
                   help="genotype tokens stored for the masked-diffusion family: haplotypes "
                   "(needs every call phased), genotypes (dosages), or auto")
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("prepare", "genotypes -> per-gene PCA dataset (TFDS array_record + codec + summary)",
         _prepare_args)
def _prepare(args: argparse.Namespace) -> None:
    from genodiff_jax.data.prepare import PrepareSettings, format_summary, prepare_dataset

    settings = PrepareSettings(args.genes, args.window, args.label, args.test_fraction, args.seed,
                               args.strict, args.components, args.tokens)
    summary = prepare_dataset(args.vcf, args.panel, args.out, settings,
                              overwrite=args.overwrite, progress=not args.quiet)
    print(format_summary(summary))
    print(f"wrote {args.out}")
