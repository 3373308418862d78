"""The schema every config is checked against: the base config (`train.defaults.get_config`),
with the `diffusion` keys of the process a config names and the `model.kwargs` of its model.

A key the base does not have is an error naming it, except in `diffusion`, whose keys are
`process` and the fields of that process's dataclass, `model.kwargs`, the fields of the named
model, and the free-form `diffusion.schedule_kwargs` and `sampling.options` (checked by the
schedule and the sampler that take them). Scalars must keep the base's type, and obviously bad
values (a batch of 0, negative step counts) are refused at load time (`LIMITS`), naming the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import ml_collections

from genodiff_jax.data.panels import MATCHES
from genodiff_jax.diffusion.process import PROCESSES
from genodiff_jax.errors import InputError
from genodiff_jax.models import MODELS
from genodiff_jax.models.ops import LAYER_SETS
from genodiff_jax.registry import Registry, UnknownNameError
from genodiff_jax.train.defaults import get_config as base_config

# Entries whose keys are whatever the schedule or the sampler they are passed to takes.
FREE_FORM = ("diffusion.schedule_kwargs", "sampling.options")
# Model fields that are not model.kwargs: the code fills them in, from what.
MODEL_FIELDS_SET_ELSEWHERE = {"dtype": "model.dtype", "param_dtype": "the code (float32)",
                              "ops": "model.ops", "num_classes": "the dataset's labels",
                              "parent": "flax", "name": "flax"}
_ANY = object()  # a key of the schema whose type is not checked
_FREE = object()  # a mapping with any keys

# Classifier-free guidance weights sampled with: w = -1 is the unconditional model, w = 0 the
# conditional one. Below -1 pushes away from the class asked for; far above the weights runs are
# tuned at (0 to a few), (1 + w) eps_cond - w eps_uncond extrapolates the network's error (issue
# 27: w = 1e9 gave 3.6 x the homozygous-ALT calls). `--guidance` is checked against it too.
GUIDANCE_RANGE = (-1.0, 100.0)

# (dotted key, least value, greatest value or None): values refused when the config is loaded.
# Bounds are included unless they are in OPEN_BOUNDS. Every number of a config must be finite
# (NaN passes any comparison); inf is allowed only in the free-form sections.
LIMITS = (
    ("train.batch_size", 1, None), ("train.grad_accum_steps", 1, None),
    ("train.num_steps", 0, None), ("train.num_epochs", 0, None),
    ("train.p_uncond", 0, 1), ("train.ema_decay", 0, 1),
    ("optim.learning_rate", 0, None), ("optim.end_lr_factor", 0, 1),
    ("optim.b1", 0, 1), ("optim.b2", 0, 1), ("optim.eps", 0, None),
    ("optim.weight_decay", 0, None),
    ("sampling.guidance", *GUIDANCE_RANGE),
    ("train.early_stopping.patience", 0, None), ("train.early_stopping.min_delta", 0, None),
    ("train.max_minutes", 0, None),
    ("optim.warmup_steps", 0, None),
    ("eval.batch_size", 1, None), ("eval.every_steps", 1, None),
    ("checkpoint.every_steps", 1, None), ("checkpoint.keep", 1, None),
    ("log.every_steps", 1, None),
    ("diffusion.num_steps", 1, None), ("sampling.steps", 0, None),
    ("mesh.num_devices", 0, None), ("distributed.num_processes", 1, None),
)
# (dotted key, "least" or "greatest"): bounds of LIMITS a value may not equal. A learning rate of
# 0 trains nothing; Adam's b1 = 1 never forgets the first gradient, eps = 0 divides by zero.
OPEN_BOUNDS = {("optim.learning_rate", "least"), ("optim.b1", "greatest"),
               ("optim.b2", "greatest"), ("optim.eps", "least")}


def _as_tree(config: ml_collections.ConfigDict) -> dict:
    return {k: _as_tree(v) if isinstance(v, ml_collections.ConfigDict) else v
            for k, v in config.items()}


def _init_fields(cls: type) -> dict[str, Any]:
    """A dataclass's constructor fields -> their defaults (`_ANY` when there is none)."""
    return {f.name: _ANY if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(cls) if f.init}


def config_schema(config: ml_collections.ConfigDict) -> dict:
    """The keys `config` may hold, as a tree of example values: the base config's
    (`train.defaults`), with the `diffusion` keys of the process it names and the `model.kwargs`
    of the model it names.
    InputError (no path) when it names an unregistered process or model."""
    schema = _as_tree(base_config())
    diffusion = config.get("diffusion")
    process = diffusion.get("process", "gaussian") if isinstance(
        diffusion, ml_collections.ConfigDict) else "gaussian"
    unregistered = _unregistered("diffusion.process", PROCESSES, process)
    if unregistered:
        raise InputError(None, unregistered)
    schema["diffusion"] = {"process": "", **{
        # the base's values give the types of the keys it has; the process's defaults the rest
        k: schema["diffusion"].get(k, v) for k, v in _init_fields(PROCESSES[process]).items()}}
    model = config.get("model")
    name = model.get("name", "") if isinstance(model, ml_collections.ConfigDict) else ""
    if name:
        unregistered = _unregistered("model.name", MODELS, name)
        if unregistered:
            raise InputError(None, unregistered)
        schema["model"]["kwargs"] = {k: _ANY for k in _init_fields(MODELS[name])
                                     if k not in MODEL_FIELDS_SET_ELSEWHERE}
    for dotted in FREE_FORM:
        section, key = dotted.split(".")
        if key in schema[section]:  # a process may have no schedule_kwargs
            schema[section][key] = _FREE
    return schema


def unknown_key(config: ml_collections.ConfigDict, dotted: str) -> str | None:
    """Why `dotted` is not a key of `config`'s schema (with the nearest known ones), or None."""
    node: Any = config_schema(config)
    names = dotted.split(".")
    for depth, name in enumerate(names):
        if node is _FREE:
            return None
        prefix = ".".join(names[:depth])
        if not isinstance(node, dict):
            return f"{prefix} is a value, not a section"
        if name not in node:
            return _unknownerror_text(".".join(names[:depth + 1]), node, prefix, config)
        node = node[name]
    return None


def _unknownerror_text(dotted: str, known: Mapping, prefix: str,
                     config: ml_collections.ConfigDict) -> str:
    name = dotted.rsplit(".", 1)[-1]
    where = f"the {prefix} keys" if prefix else "the top-level keys"
    if prefix == "diffusion":
        where = (f"the keys of diffusion process "
                 f"{config.diffusion.get('process', 'gaussian')!r}")
    elif prefix == "model.kwargs":
        where = f"the fields of model {config.model.name!r}"
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {f'{prefix}.' if prefix else ''}{close[0]}? " if close else ""
    if prefix == "model.kwargs" and name in MODEL_FIELDS_SET_ELSEWHERE:
        hint = f"{name} is set from {MODEL_FIELDS_SET_ELSEWHERE[name]}; "
    return (f"unknown config key {dotted} ({hint}{where} are: "
            f"{', '.join(sorted(known)) or 'none'})")


def _type_problem(value: Any, example: Any) -> str | None:
    """Why `value` cannot stand where the base has `example` (scalars only), or None."""
    if example is _ANY or not isinstance(example, bool | int | float | str):
        return None
    kind = {bool: "a bool", int: "an int", float: "a number", str: "a string"}[type(example)]
    if isinstance(example, bool):
        ok = isinstance(value, bool)
    elif isinstance(example, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(example, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    return None if ok else f"expected {kind}, got {value!r}"


def _check_keys(node: ml_collections.ConfigDict, schema: dict, prefix: str,
                config: ml_collections.ConfigDict) -> str | None:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            return _unknownerror_text(dotted, schema, prefix.rstrip("."), config)
        expected = schema[key]
        if expected is _FREE:
            if not isinstance(value, ml_collections.ConfigDict | Mapping):
                return f"{dotted}: expected a mapping of keyword arguments, got {value!r}"
        elif isinstance(expected, dict):
            if not isinstance(value, ml_collections.ConfigDict):
                return f"{dotted}: expected a section, got {value!r}"
            problem = _check_keys(value, expected, f"{dotted}.", config)
            if problem:
                return problem
        elif isinstance(value, ml_collections.ConfigDict):
            return f"{dotted}: expected a value, got a section"
        else:
            problem = _type_problem(value, expected)
            if problem:
                return f"{dotted}: {problem}"
    return None


def _check_values(config: ml_collections.ConfigDict) -> str | None:
    def get(dotted: str) -> Any:
        node: Any = config
        for name in dotted.split("."):
            if not isinstance(node, ml_collections.ConfigDict) or name not in node:
                return None
            node = node[name]
        return node

    problem = _non_finite(config, "")
    if problem:
        return problem
    for dotted, least, most in LIMITS:
        value = get(dotted)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue  # absent, or a field whose type the schema does not know
        low_open = (dotted, "least") in OPEN_BOUNDS
        high_open = (dotted, "greatest") in OPEN_BOUNDS
        too_low = value <= least if low_open else value < least
        too_high = most is not None and (value >= most if high_open else value > most)
        if too_low or too_high:
            if most is None:
                bound = f"{'>' if low_open else '>='} {least:g}"
            else:
                bound = (f"in {'(' if low_open else '['}{least:g}, {most:g}"
                         f"{')' if high_open else ']'}")
            return f"{dotted} must be {bound}, got {value}"
    steps, epochs = get("train.num_steps"), get("train.num_epochs")
    if steps is not None and epochs is not None and steps <= 0 and epochs <= 0:
        return "set train.num_steps > 0 or train.num_epochs > 0 (both are 0)"
    dtype = get("model.dtype")
    if dtype is not None and not _is_float_dtype(dtype):
        return f"model.dtype must be a floating-point dtype (float32, bfloat16), got {dtype!r}"
    for dotted, registry in (("model.ops", LAYER_SETS), ("diffusion.panel_match", MATCHES)):
        name = get(dotted)
        unregistered = None if name is None else _unregistered(dotted, registry, name)
        if unregistered:
            return unregistered
    processes, process_id = get("distributed.num_processes"), get("distributed.process_id")
    if processes is not None and process_id is not None and not 0 <= process_id < processes:
        return (f"distributed.process_id must be in [0, distributed.num_processes = {processes}), "
                f"got {process_id}")
    return None


def _unregistered(dotted: str, registry: Registry, name: str) -> str | None:
    """"`dotted`: unknown ... ; known: ..." (the registry's own message) when `name` is not in
    `registry`, else None."""
    try:
        registry[name]
    except UnknownNameError as e:
        return f"{dotted}: {e}"
    return None


def _non_finite(node: Any, dotted: str) -> str | None:
    """The first number of `node` that is NaN, or infinite outside the free-form sections."""
    if isinstance(node, ml_collections.ConfigDict | Mapping):
        for key, value in node.items():
            problem = _non_finite(value, f"{dotted}.{key}" if dotted else str(key))
            if problem:
                return problem
        return None
    if isinstance(node, list | tuple):
        for i, value in enumerate(node):
            problem = _non_finite(value, f"{dotted}[{i}]")
            if problem:
                return problem
        return None
    if isinstance(node, float) and (math.isnan(node) or (
            math.isinf(node) and not any(dotted.startswith(f"{f}.") for f in FREE_FORM))):
        return f"{dotted} must be a finite number, got {node}"
    return None


def _is_float_dtype(name: Any) -> bool:
    try:
        return jnp.issubdtype(jnp.dtype(name), jnp.floating)
    except TypeError:
        return False


def check_config(config: ml_collections.ConfigDict, path: str | Path | None,
                 context: str | None = None) -> None:
    """InputError naming `path` (the config file) and the dotted key when `config` holds a key
    its schema (`config_schema`) lacks, a scalar of another type than the base's, or a value out
    of range (`LIMITS`). Process fields are checked further when the process is built."""
    try:
        schema = config_schema(config)
    except InputError as e:
        problem = e.problem
    else:
        problem = _check_keys(config, schema, "", config) or _check_values(config)
    if problem:
        raise InputError(path, f"{context}: {problem}" if context else problem)


def plain(value: Any) -> Any:
    """Config values as plain Python: ConfigDicts to dicts, lists (JSON) back to tuples."""
    if isinstance(value, ml_collections.ConfigDict | Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    return value


def error_text(e: BaseException) -> str:
    """An exception's text, without the quotes KeyError puts around it (ml_collections raises
    AttributeErrors that wrap KeyErrors)."""
    while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return "; ".join(text.splitlines())
