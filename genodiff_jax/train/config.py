"""Configs -> typed objects: the one place a run is built from an `ml_collections` config.

`load_config("experiments/NAME.py[:ARG]")` reads a config file; `model_from_config`,
`process_from_config`, `optimizer_config`, `recipe_from_config` and `stop_rule_from_config` turn
its sections into the model, the diffusion process, the optimiser, the step recipe and when the run
ends; `program_from_config` chains them into a `TrainProgram`. Library code below this takes those
typed values, never the config.

Every config loaded (and every override) is checked against the schema (`train.schema`: the base
config of `train.defaults`, the named process's fields and the named model's kwargs), naming the
file and the key.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from genodiff_jax.diffusion.process import Process, build_process
from genodiff_jax.errors import InputError
from genodiff_jax.models import build_model, representation
from genodiff_jax.train.program import TrainProgram, build_program
from genodiff_jax.train.schema import check_config, error_text, plain, unknown_key
from genodiff_jax.train.state import OptimizerConfig, RowSpec
from genodiff_jax.train.step import StepRecipe
from genodiff_jax.train.stopping import StopRule

EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
DEFAULT_CONFIG = "experiments/demo.py"


def _resolve_config_path(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    # `experiments/NAME.py` from anywhere: the configs sit beside the package in this repository.
    for candidate in (EXPERIMENTS_DIR.parent / path, EXPERIMENTS_DIR / p.name):
        if candidate.is_file():
            return candidate.resolve()
    raise InputError(path, "no such config file (expected experiments/NAME.py[:ARG])")


def _config_module(path: Path):
    """The shipped configs are modules of the installed `experiments` package (so a user's own
    config can `from experiments import base`); any other file is loaded from where it is."""
    if path.parent == EXPERIMENTS_DIR:
        return importlib.import_module(f"experiments.{path.stem}")
    name = f"_genodiff_config_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass defined in the file looks its module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`path/NAME.py[:ARG]` -> `get_config(ARG)` of that file, checked (`check_config`) and locked
    (like ml_collections' config_flags)."""
    path_str, _, arg = spec.partition(":")
    path = _resolve_config_path(path_str)
    try:
        module = _config_module(path)
    except SyntaxError as e:
        raise InputError(path, f"line {e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # the file is the user's: one line, not a traceback
        raise InputError(path, f"loading it raised {_raised_at(e, path)}") from None
    if not hasattr(module, "get_config"):
        raise InputError(path, "a config file must define get_config(arg)")
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except ValueError as e:
        raise InputError(path, str(e)) from e
    except (TypeError, AttributeError, KeyError) as e:
        # ml_collections' own: a value of the wrong type for a key, a section that is not there.
        if not _raised_by_ml_collections(e):
            raise InputError(path, f"get_config raised {_raised_at(e, path)}") from None
        what = "wrong type" if isinstance(e, TypeError) else "no such key"
        raise InputError(path, f"get_config: {what}: {error_text(e)}") from e
    except Exception as e:
        raise InputError(path, f"get_config raised {_raised_at(e, path)}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise InputError(path, f"get_config must return a ConfigDict, got {type(config).__name__}")
    check_config(config, path)
    config.lock()
    return config


def _raised_at(e: BaseException, path: Path) -> str:
    """"TypeError at line 3: ..." : an exception and the line of the config file that raised it
    (where a config file imports another, the deepest line of either)."""
    frames = traceback.extract_tb(e.__traceback__)
    lines = [f.lineno for f in frames if Path(f.filename).resolve() == path]
    where = f" at line {lines[-1]}" if lines else ""
    return f"{type(e).__name__}{where}: {error_text(e)}"


def _raised_by_ml_collections(e: BaseException) -> bool:
    frames = traceback.extract_tb(e.__traceback__)
    return bool(frames) and "ml_collections" in Path(frames[-1].filename).parts


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys ("train.num_steps": 100, "sampling.options.eta": 0.5). A key outside the
    schema (see `check_config`) is an InputError naming it; a key of the schema that this config
    leaves out (a process field at its default, a model field, a sampler option) is added."""
    was_locked = config.is_locked
    for dotted, value in overrides.items():
        where = f"config override {dotted}={value!r}"
        *parents, leaf = dotted.split(".")
        node = config
        for depth, name in enumerate(parents):
            child = node.get(name)
            if not isinstance(child, ml_collections.ConfigDict):
                section = ".".join(parents[:depth + 1])
                problem = unknown_key(config, section) or f"{section} is not a section"
                raise InputError(None, f"{where}: {problem}")
            node = child
        if leaf not in node:
            problem = unknown_key(config, dotted)
            if problem:
                raise InputError(None, f"{where}: {problem}")
        try:
            with node.unlocked():
                node[leaf] = value
        except (KeyError, AttributeError, TypeError, ValueError) as e:
            raise InputError(None, f"{where}: {error_text(e)}") from e
    check_config(config, None, context="after config overrides")
    if was_locked:
        config.lock()  # a section set from a dict arrives unlocked


def num_train_steps(batch_size: int, num_steps: int, num_epochs: float, num_train: int) -> int:
    """`num_steps` when > 0, else enough steps to draw `num_epochs` x the training rows."""
    if num_steps > 0:
        return int(num_steps)
    if num_epochs <= 0:
        raise InputError(None, "set train.num_steps > 0 or train.num_epochs > 0")
    return max(1, math.ceil(num_epochs * num_train / batch_size))


def stop_rule_from_config(config: ml_collections.ConfigDict, metric: str) -> StopRule:
    """When the run ends besides its step cap: `train.early_stopping` on the selection `metric`
    and `train.max_minutes` (configs from before these keys: never)."""
    t = config.train
    es = t.get("early_stopping") or {}
    return StopRule(metric=metric, patience=int(es.get("patience", 0)),
                    min_delta=float(es.get("min_delta", 0.0)),
                    max_minutes=float(t.get("max_minutes", 0.0)))


def model_from_config(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The denoiser named in `config.model`, with its kwargs and, where it takes the process's
    representation, what the process says its denoiser needs (`denoiser_kwargs`: a token
    model's vocabulary)."""
    kwargs = plain(config.model.kwargs)
    if "ops" in config.model:
        kwargs["ops"] = str(config.model.ops)
    process = process_from_config(config)
    if representation(config.model.name) == process.representation:
        for name, value in getattr(process, "denoiser_kwargs", dict)().items():
            kwargs.setdefault(name, value)
    return build_model(config.model.name, num_classes=num_classes,
                       dtype=jnp.dtype(config.model.dtype), param_dtype=jnp.float32, **kwargs)


def process_from_config(config: ml_collections.ConfigDict) -> Process:
    """The diffusion process of `config.diffusion` (`process`: its name, the rest: its fields)."""
    fields = plain(config.diffusion)
    name = fields.pop("process", "gaussian")
    try:
        return build_process(name, **fields)
    except ValueError as e:
        raise InputError(None, f"config diffusion: {e}") from e


def optimizer_config(config: ml_collections.ConfigDict, total_steps: int) -> OptimizerConfig:
    """The `optim` section as an OptimizerConfig for a run of `total_steps` train steps."""
    o = config.optim
    accum = int(config.train.grad_accum_steps)
    return OptimizerConfig(
        learning_rate=float(o.learning_rate), warmup_steps=int(o.warmup_steps),
        total_steps=math.ceil(total_steps / accum), end_lr_factor=float(o.end_lr_factor),
        b1=float(o.b1), b2=float(o.b2), eps=float(o.eps), weight_decay=float(o.weight_decay),
        clip_grad_norm=float(o.clip_grad_norm), grad_accum_steps=accum)


def recipe_from_config(config: ml_collections.ConfigDict,
                       batch_size: int | None = None) -> StepRecipe:
    """The `train` section's step recipe (`batch_size` overrides the config's)."""
    t = config.train
    return StepRecipe(batch_size=int(batch_size or t.batch_size), p_uncond=float(t.p_uncond),
                      ema_decay=float(t.ema_decay), grad_accum_steps=int(t.grad_accum_steps))


def program_from_config(
    config: ml_collections.ConfigDict,
    *,
    row: RowSpec,
    mask: Any | None,
    num_classes: int,
    total_steps: int,
    mesh: Mesh,
    batch_size: int | None = None,
) -> TrainProgram:
    """The compiled program of `config` for examples of `row` with `num_classes` classes."""
    return build_program(
        model_from_config(config, num_classes), process_from_config(config),
        optimizer_config(config, total_steps), recipe_from_config(config, batch_size),
        row=row, mask=mask, num_classes=num_classes, mesh=mesh)


def sampling_defaults(config: ml_collections.ConfigDict | Mapping) -> dict:
    """The run's `sampling` section (sampler, steps (0: all), guidance, options) as plain values;
    runs from before the section existed get the reference's settings."""
    defaults = {"sampler": "ancestral", "steps": 0, "guidance": 0.1,
                "options": {"clip_x0": "data"}}
    section = plain(config["sampling"]) if "sampling" in config else {}
    return {**defaults, **section}
