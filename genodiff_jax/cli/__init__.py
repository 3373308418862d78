"""The `genodiff` command (DESIGN 4). Each subcommand is an entry in `COMMANDS`, registered by the
module of its stage (data: simulate, prepare; train; sample: sample, impute; evaluate: evaluate,
run; sweep; bench): its arguments and the library call it makes. The logic lives in the library
(`commands/`, `train/`, `eval/`, ...), so everything here can also be done in a notebook."""

import importlib

from genodiff_jax.cli.base import COMMANDS, Command, build_parser, command, main

# Importing a stage's module registers its subcommands, in this order in `genodiff --help`.
for _stage in ("data", "train", "sample", "evaluate", "sweep", "bench"):
    importlib.import_module(f"genodiff_jax.cli.{_stage}")

__all__ = ["COMMANDS", "Command", "build_parser", "command", "main"]
