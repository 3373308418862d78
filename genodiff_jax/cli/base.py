"""The `genodiff` command's frame: the `COMMANDS` registry (each subcommand: its arguments and
the library call it makes), the flags several commands share, and `main`, which turns
every failure into one line and an exit code."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable

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


def print_summary(header: list[str], rows: list[list]) -> None:
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    for row in [header, *cells]:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


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
