"""A finished (or running) training work dir, read back for sampling: config, run record, model,
process and the best (or latest) parameters.

Work dir layout: `config.json` (the config), `run.json` (data dir, example shape, classes, length),
`metrics.jsonl`, `tensorboard/`, `checkpoints/latest/`, `checkpoints/best/`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from genodiff_jax.diffusion.process import Process
from genodiff_jax.errors import InputError
from genodiff_jax.models import inference_weights
from genodiff_jax.train.checkpoint import restore_params
from genodiff_jax.train.config import model_from_config, process_from_config
from genodiff_jax.train.state import abstract_params

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
WORKDIR_KIND = "workdir"  # the marker kind of a work dir (`atomic.PROTECTED_KINDS`)
CHECKPOINT_DIR = "checkpoints"


def row_to_json(row: Any) -> Any:
    """One example's spec (a ShapeDtypeStruct or a dict of them) as JSON."""
    return jax.tree.map(lambda s: {"shape": list(s.shape), "dtype": str(s.dtype)}, row)


def run_row(run: dict) -> Any:
    """One example's spec, as a run recorded it (older runs: float32 features)."""
    row = run.get("row")
    if row is None:
        return jax.ShapeDtypeStruct(tuple(run["feature_shape"]), jnp.float32)
    is_spec = lambda d: isinstance(d, dict) and set(d) == {"shape", "dtype"}  # noqa: E731
    return jax.tree.map(lambda d: jax.ShapeDtypeStruct(tuple(d["shape"]), jnp.dtype(d["dtype"])),
                        row, is_leaf=is_spec)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """What a sampler needs from a work dir: the model, its process, its parameters, the run."""

    model: nn.Module
    process: Process
    params: Any
    step: int
    config: ml_collections.ConfigDict
    run: dict

    @property
    def row(self) -> jax.ShapeDtypeStruct:
        return run_row(self.run)

    @property
    def num_classes(self) -> int:
        return int(self.run["num_classes"])

    def with_weights(self, dtype: str) -> TrainedModel:
        """The same run with the parameters it samples with in `dtype` (float32 or bfloat16, a
        resolved `models.weights_dtype`): `models.inference_weights`."""
        return dataclasses.replace(self, params=inference_weights(self.model, self.params,
                                                                  self.row, dtype))


def read_run(workdir: str | os.PathLike) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, run record) of a training work dir."""
    workdir = Path(workdir)
    for name in (CONFIG_FILE, RUN_FILE):
        if not (workdir / name).is_file():
            raise InputError(workdir, f"not a training work dir (no {name}); run `genodiff train`")
    config = ml_collections.ConfigDict(json.loads((workdir / CONFIG_FILE).read_text()))
    return config, json.loads((workdir / RUN_FILE).read_text())


def load_trained(workdir: str | os.PathLike, *, which: str = "best",
                 ema: bool = True) -> TrainedModel:
    """The model of a run and its best (or latest) EMA (or raw) parameters."""
    workdir = Path(workdir)
    config, run = read_run(workdir)
    model = model_from_config(config, int(run["num_classes"]))
    process = process_from_config(config)
    try:
        params, step = restore_params(workdir / CHECKPOINT_DIR,
                                      abstract_params(model, run_row(run)), which=which, ema=ema,
                                      best_metric=process.selection_metric)
    except FileNotFoundError as e:
        raise InputError(workdir, str(e)) from e
    return TrainedModel(model, process, params, step, config, run)
