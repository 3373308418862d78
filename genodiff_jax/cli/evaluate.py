"""`genodiff evaluate` and `genodiff run` (the whole pipeline, scored in one report)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genodiff_jax.cli.base import add_overwrite_flag, command, print_summary
from genodiff_jax.errors import InputError


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
    print_summary(summary_header(report), summary_rows(report))
    print(f"wrote {args.out / 'report.html'}")


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
    p.add_argument("--panel-config", default="experiments/demo_panel.py",
                   help="config of the panel family, trained, sampled and scored beside the "
                   "others ('none': skip it)")
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
    p.add_argument("--seeds", type=int, default=3,
                   help="classifier seeds (and draws of the LD r at the held-out size)")
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
         "the generator families, evaluate them in one report", _run_args)
def _run(args: argparse.Namespace) -> None:
    from genodiff_jax.commands.run import RunSettings, run_pipeline
    from genodiff_jax.eval.report import summary_header, summary_rows
    from genodiff_jax.sampling.settings import SamplingSettings

    masked, panel = (None if config.lower() == "none" else config
                     for config in (args.masked_config, args.panel_config))
    settings = RunSettings(args.preset, args.label, args.config, masked,
                           SamplingSettings(args.sampler, args.steps), _eval_settings(args), panel)
    result = run_pipeline(args.out, settings, overwrite=args.overwrite, progress=not args.quiet)
    report = result["report"]
    print_summary(summary_header(report), summary_rows(report))
    print(json.dumps({name: str(path) for name, path in result["folders"].items()}))
