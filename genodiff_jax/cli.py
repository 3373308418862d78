"""The `genodiff` command (DESIGN 4). Each subcommand is an entry in `COMMANDS`: its arguments and the
library call it makes. The logic lives in the library, so everything here can also be done in a notebook.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path

from genodiff_jax.errors import InputError


@dataclasses.dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    def register(run):
        COMMANDS[name] = Command(help, add_arguments, run)
        return run
    return register


# -- simulate --------------------------------------------------------------------------------------

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

    files = simulate_cohort(args.out, _simulation_params(args), progress=not args.quiet)
    print(f"wrote {files.vcf}, {files.panel}, {files.bed}")


# -- prepare ---------------------------------------------------------------------------------------

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
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("prepare", "genotypes -> per-gene PCA dataset (TFDS array_record + codec + summary)",
         _prepare_args)
def _prepare(args: argparse.Namespace) -> None:
    from genodiff_jax.data.prepare import format_summary, prepare_dataset

    summary = prepare_dataset(args.vcf, args.panel, args.out, genes=args.genes, window=args.window,
                              label=args.label, test_fraction=args.test_fraction, seed=args.seed,
                              strict=args.strict, components=args.components,
                              progress=not args.quiet)
    print(format_summary(summary))
    print(f"wrote {args.out}")


# -- run -------------------------------------------------------------------------------------------

def _run_args(p: argparse.ArgumentParser) -> None:
    from genodiff_jax.data.simulate import PRESETS

    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for every output")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="cohort preset")
    p.add_argument("--label", default="pop", help="panel column to condition on")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("run", "the whole pipeline on the embedded cohort (simulate -> prepare -> ...)", _run_args)
def _run(args: argparse.Namespace) -> None:
    from genodiff_jax.data.prepare import format_summary, prepare_dataset
    from genodiff_jax.data.simulate import PRESETS, simulate_cohort

    progress = not args.quiet
    files = simulate_cohort(args.out / "cohort", PRESETS[args.preset], progress=progress)
    summary = prepare_dataset(files.vcf, files.panel, args.out / "data", genes=files.bed,
                              label=args.label, progress=progress)
    print(format_summary(summary))
    print(json.dumps({"cohort": str(args.out / "cohort"), "data": str(args.out / "data")}))


# -- entry point -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genodiff", description="Diffusion models on per-gene PCA features of genotypes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args) or 0
    except InputError as e:
        print(f"genodiff {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genodiff {args.command}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
