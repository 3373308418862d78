"""`genodiff sweep` (and `--train`: a schedule study)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genodiff_jax.cli.base import add_overwrite_flag, add_weights_dtype_flag, command, print_summary
from genodiff_jax.errors import InputError


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
    print_summary(keys, rows)
    print(f"\nsteps from which each curve stays within {result['convergence']['tolerance']:g} "
          "(relative) of its value at its largest step count:")
    print_summary(["curve", *measures],
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
    print_summary(header, rows)
    print(f"wrote {args.out}")
