"""The `genodiff` command (DESIGN 4). Each subcommand is an entry in `COMMANDS`: its arguments and
the library call it makes. The logic lives in the library, so everything here can also be done in
a notebook.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
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


def add_overwrite_flag(p: argparse.ArgumentParser) -> None:
    """`--overwrite`, as every command with an --out folder takes it (`atomic.check_output`)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even when it is a file or a folder genodiff did not write "
                   "(never an input or a work dir)")


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


# -- train ---------------------------------------------------------------------------------------

def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="a `genodiff prepare` folder")
    p.add_argument("--workdir", required=True, type=Path,
                   help="checkpoints, metrics.jsonl, config.json; an existing run resumes")
    p.add_argument("--config", default=None,
                   help="experiments/NAME.py[:ARG] (default: experiments/demo.py)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("train", "train a denoiser on a prepared dataset; resumes from --workdir", _train_args)
def _train(args: argparse.Namespace) -> None:
    from genodiff_jax.atomic import check_writable_folder
    from genodiff_jax.train.loop import run_training

    check_writable_folder(args.workdir)
    result = run_training(args.data, args.workdir, args.config, progress=not args.quiet)
    _print_stop(result)
    print(json.dumps(result))


def _print_stop(trained: dict) -> None:
    """One line: why training stopped (converged, time cap, step cap), or had stopped before."""
    from genodiff_jax.commands.run import stop_line

    if stop_line(trained):
        print(stop_line(trained))


# -- sample --------------------------------------------------------------------------------------

def _sample_args(p: argparse.ArgumentParser) -> None:
    from genodiff_jax.sampling.calling import CALLERS, DEFAULT_CALLING

    p.add_argument("--workdir", required=True, type=Path, help="a `genodiff train` work dir")
    p.add_argument("--n", type=int, default=None,
                   help="people to generate (not needed with explicit --labels counts)")
    p.add_argument("--out", required=True, type=Path, help="folder for synthetic.vcf.gz etc.")
    p.add_argument("--sampler", default=None,
                   help="a sampler of the run's process (default: the run config's sampling."
                   "sampler; Gaussian: ancestral, ddim, dpmpp, dpmpp_3m, unipc)")
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: the config's sampling.steps, 0 = all)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance w (default: the config's, 0.1)")
    p.add_argument("--sampler-options", default=None, metavar="K=V,...",
                   help="the sampler's own options, e.g. eta=0.5 (ddim) or clip_x0=none "
                   "(Gaussian samplers; default clip_x0=data: the training range)")
    p.add_argument("--labels", default="uniform",
                   help="uniform | train (training frequencies) | case_rate=R | A=10,B=5")
    p.add_argument("--calling", default=None, choices=sorted(CALLERS),
                   help="gene-PCA runs: dosages -> calls: round, frequency (counts matched to the "
                   "decoded frequency, by rank) or hybrid (frequency where the codec keeps the "
                   f"variant, round elsewhere) (default {DEFAULT_CALLING}, see the README)")
    p.add_argument("--plink", action="store_true", help="also write synthetic.bed/.bim/.fam")
    p.add_argument("--pgen", action="store_true",
                   help="also write PLINK 2 synthetic.pgen/.pvar/.psam (phased when the cohort is)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: bounded by memory")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    p.add_argument("--raw-params", action="store_true", help="raw instead of EMA parameters")
    p.add_argument("--data", type=Path, default=None, help="override the run's dataset folder")
    add_weights_dtype_flag(p)
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_weights_dtype_flag(p: argparse.ArgumentParser, where: str = "for sampling") -> None:
    """--weights-dtype: the dtype of the weight matrices a sampler runs with."""
    from genodiff_jax.models.ops.dense import WEIGHTS_DTYPES

    p.add_argument("--weights-dtype", default="auto", choices=WEIGHTS_DTYPES,
                   help=f"weight matrices {where}: bfloat16 multiplies the Dense layers in bf16 "
                   "(float32 accumulation, kernels stored [out, in]); auto: bfloat16 on a CPU "
                   "with AVX512-BF16 or AMX, else float32 (default: auto)")


def parse_options(text: str | None, flag: str = "--sampler-options") -> dict:
    """"k=v,k2=v2" -> {"k": v, ...}; values are Python literals where they parse (numbers, True,
    None), else strings."""
    import ast

    options = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(None, f"{flag}: expected key=value, got {item!r}")
        value = value.strip()
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            # nan and inf are numbers (which the sampler then refuses), not names
            numeric = value.lower().lstrip("+-") in ("nan", "inf", "infinity")
            options[key.strip()] = float(value) if numeric else value
    return options


@command("sample", "generate a synthetic cohort from a trained run, written as genotypes",
         _sample_args)
def _sample(args: argparse.Namespace) -> None:
    from genodiff_jax.commands.sample import sample_cohort
    from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings

    sampling = SamplingSettings(args.sampler, args.steps, args.guidance,
                                parse_options(args.sampler_options), seed=args.seed,
                                batch_size=args.batch_size, weights_dtype=args.weights_dtype)
    output = OutputSettings(args.out, overwrite=args.overwrite, plink=args.plink, pgen=args.pgen)
    summary = sample_cohort(args.workdir, output, args.n, sampling, labels=args.labels,
                            calling=args.calling, data_dir=args.data,
                            checkpoint=args.checkpoint, ema=not args.raw_params,
                            progress=not args.quiet)
    print(json.dumps(summary, default=str))


# -- impute --------------------------------------------------------------------------------------

def _impute_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, type=Path,
                   help="a `genodiff train` work dir of the masked-diffusion family (haplotypes)")
    p.add_argument("--vcf", required=True, type=Path,
                   help="phased genotypes with no-calls (./.) or missing sites to fill")
    p.add_argument("--out", required=True, type=Path, help="folder for imputed.vcf.gz, dosages.npz")
    p.add_argument("--panel", type=Path, default=None,
                   help="the people's classes (the run's label column); default: unconditional")
    p.add_argument("--mask-sites", type=Path, default=None,
                   help="a file of chrom:pos sites to hide and impute (e.g. for a benchmark)")
    p.add_argument("--draws", type=int, default=1,
                   help="fillings averaged into dosages.npz (1 to 1000)")
    p.add_argument("--steps", type=int, default=None, help="unmasking steps (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: bounded by memory")
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("impute", "fill missing genotypes with a masked-diffusion run (inpainting)", _impute_args)
def _impute(args: argparse.Namespace) -> None:
    from genodiff_jax.sampling.impute import format_summary, impute_vcf
    from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings

    sampling = SamplingSettings(steps=args.steps, seed=args.seed, batch_size=args.batch_size)
    summary = impute_vcf(args.workdir, args.vcf, OutputSettings(args.out, args.overwrite),
                         panel=args.panel, mask_sites=args.mask_sites, draws=args.draws,
                         sampling=sampling, progress=not args.quiet)
    print(f"impute: {format_summary(summary)}", file=sys.stderr)
    print(json.dumps(summary))


# -- evaluate --------------------------------------------------------------------------------------

def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="the `genodiff prepare` folder")
    p.add_argument("--synthetic", required=True, action="append", metavar="[NAME=]FOLDER",
                   help="a `genodiff sample` folder; repeat as NAME=FOLDER to score several "
                   "cohorts (e.g. both generator families) in one report")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    add_overwrite_flag(p)
    _evaluate_args_defaults(p)


def _eval_settings(args: argparse.Namespace):
    from genodiff_jax.eval.report import EvalSettings

    return EvalSettings(classifiers=tuple(args.classifiers.split(",")),
                        seeds=tuple(range(args.seeds)), classifier_epochs=args.epochs,
                        max_nnaa=args.max_nnaa, sections=args.sections,
                        mosaic_segments=args.mosaic_segments)


def synthetic_arg(values: list[str]) -> Path | dict[str, Path]:
    """One folder (named "model"), or NAME=FOLDER for each of several."""
    if len(values) == 1 and "=" not in values[0]:
        return Path(values[0])
    named = {}
    for value in values:
        name, sep, folder = value.partition("=")
        if not sep or not name or not folder:
            raise InputError(None, f"--synthetic: with several cohorts give NAME=FOLDER, got "
                             f"{value!r}")
        if name in named:
            raise InputError(None, f"--synthetic: the name {name!r} is given twice")
        named[name] = Path(folder)
    return named


@command("evaluate", "every metric: classifier transfer, augmentation, NNAA, pop-gen fidelity, "
         "privacy, each beside reference generators; report.json, report.html, plots",
         _evaluate_args)
def _evaluate(args: argparse.Namespace) -> None:
    from genodiff_jax.eval.report import evaluate, summary_header, summary_rows

    report = evaluate(args.data, synthetic_arg(args.synthetic), args.out, _eval_settings(args),
                      overwrite=args.overwrite)
    _print_summary(summary_header(report), summary_rows(report))
    print(f"wrote {args.out / 'report.html'}")


def _print_summary(header: list[str], rows: list[list]) -> None:
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    for row in [header, *cells]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


# -- run -------------------------------------------------------------------------------------------

def _run_args(p: argparse.ArgumentParser) -> None:
    from genodiff_jax.data.simulate import PRESETS

    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for every output")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="cohort preset")
    p.add_argument("--label", default="pop", help="panel column to condition on")
    p.add_argument("--config", default="experiments/demo.py",
                   help="training config, experiments/NAME.py[:ARG]")
    p.add_argument("--sampler", default="dpmpp", help="sampler for the synthetic cohort")
    p.add_argument("--steps", type=int, default=50, help="sampling steps")
    p.add_argument("--masked-config", default="experiments/demo_masked.py",
                   help="config of the masked-diffusion family, trained and sampled beside the "
                   "gene-PCA model and scored in the same report ('none': skip it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the output folders under --out even when genodiff did not write "
                   "them (never a work dir: training resumes there)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _evaluate_args_defaults(p)


def _evaluate_args_defaults(p: argparse.ArgumentParser) -> None:
    """`run` takes evaluate's tuning flags (not its folders, which `run` chooses)."""
    from genodiff_jax.eval.report import EvalSettings
    from genodiff_jax.eval.sections import DEFAULT_SECTIONS, SECTIONS

    def section_names(text: str) -> tuple[str, ...]:
        names = tuple(x.strip() for x in text.split(",") if x.strip())
        unknown = [name for name in names if name not in SECTIONS]
        if unknown or not names or len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(
                f"{'unknown section ' + unknown[0] if unknown else 'name each section once'}; "
                f"known: {', '.join(sorted(SECTIONS))}")
        return names

    p.add_argument("--sections", type=section_names, default=",".join(DEFAULT_SECTIONS),
                   help="comma-separated evaluation sections, run and tabled in this order "
                   f"(default: %(default)s; known: {', '.join(sorted(SECTIONS))})")
    p.add_argument("--classifiers", default="mlp,cnn,transformer", help="comma-separated")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds")
    p.add_argument("--epochs", type=int, default=30, help="classifier training epochs")
    p.add_argument("--max-nnaa", type=int, default=EvalSettings.max_nnaa,
                   help="people per set in NNAA (at least the training split to see copies)")

    def segment_lengths(text: str) -> tuple[int, ...]:
        try:
            lengths = tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            lengths = (0,)
        if any(n < 1 for n in lengths):
            raise argparse.ArgumentTypeError(f"need comma-separated lengths >= 1, got {text!r}")
        return lengths

    p.add_argument("--mosaic-segments", default="20,100,500", type=segment_lengths,
                   help="mean segment lengths (SNPs) of the mosaic references, one mosaic_N "
                   "generator each (default: %(default)s)")


@command("run", "the whole pipeline on the embedded cohort: simulate, prepare, train and sample "
         "both generator families, evaluate them in one report", _run_args)
def _run(args: argparse.Namespace) -> None:
    from genodiff_jax.commands.run import RunSettings, run_pipeline
    from genodiff_jax.eval.report import summary_header, summary_rows
    from genodiff_jax.sampling.settings import SamplingSettings

    masked = None if args.masked_config.lower() == "none" else args.masked_config
    settings = RunSettings(args.preset, args.label, args.config, masked,
                           SamplingSettings(args.sampler, args.steps), _eval_settings(args))
    result = run_pipeline(args.out, settings, overwrite=args.overwrite, progress=not args.quiet)
    report = result["report"]
    _print_summary(summary_header(report), summary_rows(report))
    print(json.dumps({name: str(path) for name, path in result["folders"].items()}))


# -- sweep -----------------------------------------------------------------------------------------

def _sweep_args(p: argparse.ArgumentParser) -> None:
    from genodiff_jax.families import FAMILIES
    from genodiff_jax.sampling.calling import CALLERS, DEFAULT_CALLING
    from genodiff_jax.sweep.panel import PANEL, PanelSettings

    def listed(values) -> str:
        return ",".join(str(v) for v in values)

    p.add_argument("--workdir", type=Path, default=None,
                   help="a `genodiff train` work dir (not with --train)")
    p.add_argument("--out", required=True, type=Path,
                   help="folder for sweep.json, sweep.csv, convergence.csv and the plots (with "
                   "--train: the study's folder, one trained and swept run per cell)")
    p.add_argument("--train", action="store_true",
                   help="a study: train one run per cell of --study's grid of config overrides "
                   "on --data, then sweep each (the other sweep flags come from the study file)")
    p.add_argument("--study", default=None,
                   help="with --train: experiments/study_NAME.py[:ARG] (e.g. "
                   "experiments/study_schedules.py)")
    p.add_argument("--data", type=Path, default=None,
                   help="the run's dataset folder (default: the one it was trained on)")
    p.add_argument("--samplers", default=None,
                   help="comma-separated samplers of the run's process (default: every one it "
                   "has)")
    p.add_argument("--steps", default=None,
                   help="comma-separated step counts (default: the family's, those the run "
                   "takes; " + "; ".join(f"{name}: {listed(family.default_steps)}"
                                         for name, family in FAMILIES.items()) + ")")
    p.add_argument("--guidance", default=None,
                   help="comma-separated guidance weights w (default: the run config's)")
    p.add_argument("--temperatures", default=None,
                   help="comma-separated temperatures, for samplers that take one (masked "
                   "family; default: the run config's)")
    p.add_argument("--n", type=int, default=None,
                   help="people per cell (default: the held-out split's size, at most 500)")
    p.add_argument("--labels", default="test",
                   help="test (the held-out split's class mix) | uniform | train | case_rate=R "
                   "| A=10,B=5")
    p.add_argument("--calling", default=None, choices=sorted(CALLERS),
                   help=f"dosages -> calls for gene-PCA runs (default: {DEFAULT_CALLING}, as "
                   "`genodiff sample`)")
    p.add_argument("--measures", default=None,
                   help=f"comma-separated panel measures (default: all: {listed(PANEL)})")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="relative tolerance of the convergence table (default: %(default)s)")
    p.add_argument("--no-reference", action="store_true",
                   help="do not score the real training people beside the cells")
    p.add_argument("--max-nnaa", type=int, default=PanelSettings.max_nnaa,
                   help="people per side in NNAA and the two-sample test (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="default: bounded by memory")
    p.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    add_weights_dtype_flag(p)
    p.add_argument("--raw-params", action="store_true", help="raw instead of EMA parameters")
    add_overwrite_flag(p)
    p.add_argument("--quiet", action="store_true", help="no line per cell on stderr")


@command("sweep", "sample and score a trained run over a grid of sampler settings (sampler x "
         "steps x guidance [x temperature]): quality against steps and seconds, compile apart",
         _sweep_args)
def _sweep(args: argparse.Namespace) -> None:
    from genodiff_jax.sweep.grid import parse_list
    from genodiff_jax.sweep.panel import PanelSettings
    from genodiff_jax.sweep.run import SweepSettings, sweep_workdir

    log = None if args.quiet else (lambda msg: print(f"sweep: {msg}", file=sys.stderr, flush=True))
    if args.train:
        _study(args, log)
        return
    if args.workdir is None or args.study is not None:
        raise InputError(None, "sweep needs --workdir (or --train with --study and --data)")
    settings = SweepSettings(
        samplers=parse_list(args.samplers, str, "--samplers"),
        steps=parse_list(args.steps, int, "--steps"),
        guidance=parse_list(args.guidance, float, "--guidance"),
        temperatures=parse_list(args.temperatures, float, "--temperatures"),
        n=args.n, labels=args.labels, seed=args.seed, calling=args.calling,
        tolerance=args.tolerance, measures=parse_list(args.measures, str, "--measures"),
        reference=not args.no_reference, checkpoint=args.checkpoint, ema=not args.raw_params,
        batch_size=args.batch_size, weights_dtype=args.weights_dtype,
        panel=PanelSettings(max_nnaa=args.max_nnaa, max_two_sample=args.max_nnaa, seed=args.seed))
    result = sweep_workdir(args.workdir, args.out, settings, data_dir=args.data,
                           overwrite=args.overwrite, log=log)
    measures = result["settings"]["measures"]
    keys = ["sampler", "steps", "guidance", "temperature", "compile_s", "sample_s", *measures]
    def cells(row: dict, names: list[str]) -> list:
        return [row[k] if row.get(k) is not None else "-" for k in names]

    rows = [cells(row, keys) for row in result["cells"]]
    if result["reference"] is not None:
        rows.append(cells({**result["reference"], "sampler": result["reference"]["name"]}, keys))
    _print_summary(keys, rows)
    print(f"\nsteps from which each curve stays within {result['convergence']['tolerance']:g} "
          "(relative) of its value at its largest step count:")
    _print_summary(["curve", *measures],
                   [cells(row, ["curve", *measures]) for row in result["convergence"]["rows"]])
    print(f"wrote {args.out}")


def _study(args: argparse.Namespace, log) -> None:
    from genodiff_jax.sweep.study import run_study, study_summary

    if args.study is None or args.data is None or args.workdir is not None:
        raise InputError(None, "sweep --train needs --study and --data (and no --workdir: the "
                               "study trains its own runs)")
    result = run_study(args.data, args.study, args.out, overwrite=args.overwrite,
                       progress=not args.quiet, log=log)
    header, rows = study_summary(result)
    _print_summary(header, rows)
    print(f"wrote {args.out}")


# -- bench -----------------------------------------------------------------------------------------

def _bench_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a registered denoiser at the paper's sizes")
    which.add_argument("--models", help="comma-separated denoisers, or 'all'")
    which.add_argument("--config", help="the model and recipe of experiments/NAME.py[:ARG]")
    p.add_argument("--model-kwargs", default=None,
                   help='JSON model fields, e.g. \'{"widths": [64, 32]}\', or one object per '
                   'model name: \'{"mlp_unet": {...}, "cnn_unet": {...}}\'')
    p.add_argument("--genes", type=int, default=None,
                   help="gene axis G of the features [G, K] (features family; default 2048)")
    p.add_argument("--components", type=int, default=None,
                   help="components per gene K (features family; default 8)")
    p.add_argument("--window", type=int, default=None,
                   help="SNPs L of the tokens [H, L] (masked family; default: the config's "
                   "diffusion.window), rounded up to the model's length multiple")
    p.add_argument("--classes", type=int, default=26, help="number of classes")
    p.add_argument("--batch", default=None,
                   help="rows per train step and forward call (default: the config's, else 32); "
                   "max: the largest train batch that fits in device memory")
    p.add_argument("--memory-limit-gb", type=float, default=None,
                   help="memory per device for --batch max (default: the device's free memory; "
                   "CPUs report none)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                   help="compute dtype (default: the config's, else float32; params stay float32)")
    add_weights_dtype_flag(p, "in the forward and sample sections")
    p.add_argument("--what", default=None,
                   help="comma-separated sections: train, forward, sample (default: train,forward; "
                   "none with --project)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps / calls / cohorts")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed calls after the first (train and forward)")
    p.add_argument("--sampler", default="ancestral",
                   help="comma-separated samplers for the sample section")
    p.add_argument("--sampler-options", default=None, metavar="K=V,...",
                   help="options passed to every sampler of the sample section, e.g. eta=0.5 "
                   "(ddim) or clip_x0=1.5 (default: each sampler's own)")
    p.add_argument("--steps", type=int, default=25, help="sampling steps")
    p.add_argument("--n", type=int, default=256, help="people per sampled cohort")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance w (0: one model call a step; default: the "
                   "config's sampling.guidance, 0.1 for --model)")
    p.add_argument("--sample-batch", type=int, default=None,
                   help="sampling batch (default: from free device memory, as `genodiff sample`)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOP/s of one device for MFU (default: known accelerators only)")
    p.add_argument("--num-devices", type=int, default=0, help="devices in the mesh (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="none", metavar="none|torch",
                   help="torch: also time the PyTorch twin of each gene-PCA denoiser and train "
                   "step (benchmarks/torch_reference.py; pip install -r "
                   "benchmarks/requirements-torch.txt) in turns with ours, train and forward "
                   "sections; ratio = torch seconds / ours (default: none)")
    p.add_argument("--project", default=None, metavar="h100,h200",
                   help="also project onto these GPUs, computed without one: FLOPs, bytes and "
                   "memory of the train and sampling steps from the programs compiled here, the "
                   "largest train batch that fits, roofline times (lower bounds) beside the "
                   "project's goals; bfloat16 unless --dtype")
    p.add_argument("--project-people", type=int, default=2504,
                   help="people a projection samples and splits for training (default: the 2504 "
                   "of 1000 Genomes)")
    p.add_argument("--project-snps", type=int, default=1_000_000,
                   help="SNPs of the chromosome a token model's projection covers in windows "
                   "(default 1,000,000, a round assumption)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON result here")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@command("bench", "measure train-step, denoiser-call and sampling throughput (compile apart, "
         "median of N, FLOPs, MFU); JSON with the machine and the command", _bench_args)
def _bench(args: argparse.Namespace) -> None:
    import shlex

    from genodiff_jax.bench import (
        BenchSettings,
        parse_batch,
        parse_model_kwargs,
        resolve_models,
        run_bench,
    )
    from genodiff_jax.bench import write_json as write_bench_json

    specs = resolve_models(args.models or args.model, config=args.config,
                           model_kwargs=parse_model_kwargs(args.model_kwargs))
    settings = BenchSettings(
        genes=args.genes, components=args.components, window=args.window, classes=args.classes,
        batch=parse_batch(args.batch), memory_limit_gb=args.memory_limit_gb, dtype=args.dtype,
        weights_dtype=args.weights_dtype, repeats=args.repeats, warmup=args.warmup,
        what=_split(args.what if args.what is not None else
                    "" if args.project is not None else "train,forward"),
        samplers=_split(args.sampler), sampler_options=parse_options(args.sampler_options),
        steps=args.steps, n=args.n, guidance=args.guidance,
        sample_batch=args.sample_batch, peak_tflops=args.peak_tflops,
        num_devices=args.num_devices, seed=args.seed, reference=args.reference,
        project=_split(args.project or ""), project_people=args.project_people,
        project_snps=args.project_snps)
    log = None if args.quiet else (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    result = run_bench(specs, settings, command=shlex.join(["genodiff", *args.argv]), log=log)
    if args.json is not None:
        write_bench_json(result, args.json)
    print(json.dumps(result, indent=2))


# -- entry point -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genodiff", description="Diffusion models on per-gene PCA features of genotypes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def _training_errors() -> tuple[type[BaseException], ...]:
    """Errors that end a run with a message rather than a traceback (imported only if loaded)."""
    loop = sys.modules.get("genodiff_jax.train.loop")
    return (loop.NonFiniteLossError,) if loop else ()


def _os_error(e: OSError) -> str:
    """"PATH: problem" for an OSError, in one line."""
    problem = e.strerror or " ".join(str(e).split()) or type(e).__name__
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(map(os.fsdecode, paths))}: {problem}" if paths else problem


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: outputs in progress are removed on the way out."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def _leave_now(code: int) -> None:
    """Exit at once: a compiled computation still running (a sampler's scan on another thread)
    would otherwise hold the interpreter's exit until it ends. Called after the stack has
    unwound, so every temporary output is already removed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line, for records
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        return COMMANDS[args.command].run(args) or 0
    except InputError as e:
        print(f"genodiff {args.command}: error: {e}", file=sys.stderr)
        return 2
    except _training_errors() as e:
        print(f"genodiff {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # What the checks before any work did not foresee (a folder made read-only meanwhile, a
        # full disk): one line naming the path; outputs in progress were removed on the way out.
        print(f"genodiff {args.command}: error: {_os_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"genodiff {args.command}: {what}; nothing half-written was kept", file=sys.stderr)
        _leave_now(143 if isinstance(e, Terminated) else 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
