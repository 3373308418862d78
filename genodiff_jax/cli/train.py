"""`genodiff train`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genodiff_jax.cli.base import command


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
