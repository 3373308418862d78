"""What `genodiff bench` measures: `--model/--models/--config` (+ `--model-kwargs`) as BenchModels.

A BenchModel is a config (the recipe of the model's family for a registered name: the paper's,
experiments/base.py, for features and experiments/masked.py for tokens; or the file `--config`
names) whose model section names the denoiser to measure. The denoiser, the diffusion process and
the train program are built from that config by `genodiff_jax.train.config`, as a training run
builds them, so the step timed here is the step a run trains with.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from genodiff_jax.diffusion.process import PROCESSES, Process
from genodiff_jax.errors import InputError
from genodiff_jax.families import FAMILIES
from genodiff_jax.models import MODELS, representation
from genodiff_jax.sharding import batch_sharding, replicated
from genodiff_jax.train.config import (
    load_config,
    model_from_config,
    plain,
    process_from_config,
    program_from_config,
)
from genodiff_jax.train.program import TrainProgram

# The paper's recipe (diffusion, optimiser, batch) and MLP_CNN_PAPER, for models named with --model.
BASE_CONFIG = "experiments/base.py"
# The length of the lr schedule the optimiser is built with: it does not change the cost of a step.
LR_SCHEDULE_STEPS = 10_000


@dataclasses.dataclass(frozen=True)
class BenchModel:
    """A denoiser and the training recipe around it: `config`, whose model section is this one."""

    config: ml_collections.ConfigDict = dataclasses.field(repr=False)
    process: Process  # process_from_config(config)
    source: str  # "paper sizes[ with --model-kwargs]" or the config spec

    @property
    def name(self) -> str:
        return str(self.config.model.name)

    @property
    def kwargs(self) -> dict:
        """The model's fields as the config sets them (plain values, tuples for lists)."""
        return plain(self.config.model.kwargs)

    @property
    def dtype(self) -> str:
        return str(self.config.model.dtype)

    @property
    def batch(self) -> int:
        """The recipe's train batch."""
        return int(self.config.train.batch_size)

    def __repr__(self) -> str:
        return (f"BenchModel({self.name!r}, kwargs={self.kwargs!r}, dtype={self.dtype!r}, "
                f"process={self.process!r}, source={self.source!r})")

    def with_dtype(self, dtype: str) -> BenchModel:
        """The same model computing in `dtype`."""
        return dataclasses.replace(self, config=_with_model(self.config, self.name, self.kwargs,
                                                            dtype))


def _with_model(config: ml_collections.ConfigDict, name: str, kwargs: Mapping,
                dtype: str) -> ml_collections.ConfigDict:
    """A copy of `config` whose model section is `name(**kwargs)` in `dtype` (an `ops` kwarg goes
    to model.ops, where `model_from_config` reads the layer set)."""
    kwargs = dict(kwargs)
    out = copy.deepcopy(config)
    with out.unlocked():
        out.model.name = name
        if "ops" in kwargs:
            out.model.ops = str(kwargs.pop("ops"))
        out.model.kwargs = ml_collections.ConfigDict(kwargs)
        out.model.dtype = dtype
    return out


def _spec(config: ml_collections.ConfigDict, name: str, kwargs: Mapping, source: str) -> BenchModel:
    config = _with_model(config, name, kwargs, str(config.model.dtype))
    return BenchModel(config=config, process=process_from_config(config), source=source)


def parse_model_kwargs(text: str | None) -> dict:
    """--model-kwargs: a JSON object of model fields, or one object per model name."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(None, f"--model-kwargs is not valid JSON ({e.msg} at char {e.pos})") from e
    if not isinstance(value, dict):
        raise InputError(None, f"--model-kwargs must be a JSON object, got {type(value).__name__}")
    return value


def _kwargs_for(name: str, overrides: Mapping) -> dict:
    """A flat object applies to every model; an object keyed by model names gives each its own."""
    per_model = bool(overrides) and all(k in MODELS and isinstance(v, Mapping)
                                        for k, v in overrides.items())
    return dict(overrides.get(name, {})) if per_model else dict(overrides)


def _model_names(models: Sequence[str] | str) -> list[str]:
    """Comma-separated registered names, or "all"."""
    names = [models] if isinstance(models, str) else list(models)
    names = [n.strip() for part in names for n in part.split(",") if n.strip()]
    if names == ["all"]:
        return sorted(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise InputError(None, f"unknown model {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(sorted(MODELS))} or all")
    return names


def resolve_models(
    models: Sequence[str] | str | None = None,
    *,
    config: str | None = None,
    model_kwargs: Mapping | None = None,
) -> list[BenchModel]:
    """The models to measure: registered names ("all" for every one) with their family's recipe
    (`Family.bench_recipe`) at its sizes (the recipe's model fields for the model it names, e.g.
    MLP_CNN_PAPER for mlp_cnn; else the registry's defaults, the paper's), or the model of a
    config file
    `path.py[:arg]`; `model_kwargs` overrides fields either way."""
    overrides = dict(model_kwargs or {})
    if config is not None:
        if models:
            raise InputError(None, "give either --config or --model/--models, not both")
        c = load_config(config)
        name = str(c.model.name)
        return [_spec(c, name, {**plain(c.model.kwargs), **_kwargs_for(name, overrides)}, config)]
    if not models:
        raise InputError(None, "name a model (--model, --models) or a config (--config)")
    recipes = {}
    specs = []
    for name in _model_names(models):
        path = FAMILIES[representation(name)].bench_recipe
        if path not in recipes:
            recipes[path] = load_config(path)
        recipe = recipes[path]
        sizes = plain(recipe.model.kwargs) if name == recipe.model.name else {}
        mine = _kwargs_for(name, overrides)
        source = ("paper sizes" if path == BASE_CONFIG else f"{path} sizes") + (
            " with --model-kwargs" if mine else "")
        specs.append(_spec(recipe, name, {**sizes, **mine}, source))
    return specs


def build_denoiser(spec: BenchModel, classes: int) -> nn.Module:
    """`model_from_config` of the spec; a field the model does not have is an InputError."""
    try:
        return model_from_config(spec.config, classes)
    except TypeError as e:
        raise InputError(None, f"{spec.name}: bad --model-kwargs ({e})") from e


def train_program(spec: BenchModel, *, row: Any, mask: np.ndarray | None, classes: int,
                  batch: int, mesh: Mesh) -> TrainProgram:
    """The spec's train program at `batch` for examples of `row` with real slots `mask` (as
    `program_from_config` builds a run's)."""
    return program_from_config(spec.config, row=row, mask=mask, num_classes=classes,
                               total_steps=LR_SCHEDULE_STEPS, mesh=mesh, batch_size=batch)


def jit_forward(model: nn.Module, mesh: Mesh, compiler_options: dict | None = None):
    """One denoiser call `(params, x, t, y) -> out` (train=False), rows split over the mesh: one
    unguided sampling step."""
    rows, repl = batch_sharding(mesh), replicated(mesh)
    return jax.jit(lambda p, x, t, y: model.apply({"params": p}, x, t, y, train=False),
                   in_shardings=(repl, rows, rows, rows), out_shardings=rows,
                   compiler_options=compiler_options)


def json_value(v: Any) -> Any:
    """`v` as a JSON value (tuples as lists, anything else unknown as its str)."""
    if isinstance(v, Mapping):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [json_value(x) for x in v]
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return str(v)


def model_fields(model: nn.Module) -> dict:
    """The module's size fields as JSON values."""
    skip = {"parent", "name", "num_classes", "dtype", "param_dtype"}
    return {f.name: json_value(getattr(model, f.name)) for f in dataclasses.fields(model)
            if f.name not in skip}


def is_paper_size(model: nn.Module) -> bool:
    """Whether every size field equals the registered defaults (the paper's sizes)."""
    default = type(model)(num_classes=model.num_classes)
    return model_fields(model) == model_fields(default)


def diffusion_fields(process: Process) -> dict:
    """The process's registered name and its fields as JSON values (num_steps as "T")."""
    name = next((n for n, cls in PROCESSES.items() if cls is type(process)), None)
    fields = {("T" if f.name == "num_steps" else f.name): json_value(getattr(process, f.name))
              for f in dataclasses.fields(process)}
    return {"process": name, **fields}
