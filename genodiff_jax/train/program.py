"""A run's compiled program: model, process, optimiser and recipe -> state shardings, jitted step
and evaluation. The one place that chains make_optimizer -> make_train_step -> abstract state ->
jit; the loop, `genodiff bench` and the tests build their programs here.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import optax
from jax.sharding import Mesh

from genodiff_jax.diffusion.process import Process
from genodiff_jax.train.state import (
    OptimizerConfig,
    RowSpec,
    TrainState,
    abstract_train_state,
    create_train_state,
    make_lr_schedule,
    make_optimizer,
    row_spec,
)
from genodiff_jax.train.step import (
    StepRecipe,
    jit_eval_fn,
    jit_train_step,
    make_eval_fn,
    make_train_step,
)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainProgram:
    """What a run trains with; `step` and `evaluation(...)` compile lazily."""

    model: nn.Module
    process: Process
    optimizer: OptimizerConfig
    tx: optax.GradientTransformation
    recipe: StepRecipe
    row: jax.ShapeDtypeStruct  # one example's shape and dtype
    mask: np.ndarray | None  # real slots of an example (None: all)
    num_classes: int
    mesh: Mesh
    abstract_state: TrainState  # shapes, dtypes and shardings: the restore target

    @property
    def shardings(self) -> TrainState:
        return jax.tree.map(lambda a: a.sharding, self.abstract_state)

    def init_state(self, key: jax.Array) -> TrainState:
        """A fresh state, initialised directly into its shardings."""
        return create_train_state(self.model, self.tx, key, self.row, self.mesh)

    @functools.cached_property
    def step(self):
        """The train step, jitted once: `(state, data, key) -> (state, metrics)`, state donated."""
        step_fn = make_train_step(
            self.model, self.process, self.tx, self.recipe, mask=self.mask,
            num_classes=self.num_classes, lr_schedule=make_lr_schedule(self.optimizer),
            mesh=self.mesh)
        return jit_train_step(step_fn, self.shardings, self.mesh)

    def evaluation(self, *, batch_size: int, num_rows: int, params: str = "ema_params"):
        """The jitted validation `(params, data, key) -> metrics` over `num_rows` padded rows."""
        eval_fn = make_eval_fn(self.model, self.process, mask=self.mask, batch_size=batch_size,
                               num_rows=num_rows, mesh=self.mesh)
        return jit_eval_fn(eval_fn, getattr(self.shardings, params), self.mesh)


def build_program(
    model: nn.Module,
    process: Process,
    optimizer: OptimizerConfig,
    recipe: StepRecipe,
    *,
    row: RowSpec,
    mask: Any | None,
    num_classes: int,
    mesh: Mesh,
) -> TrainProgram:
    """The program of a run (nothing is compiled or allocated until used)."""
    tx = make_optimizer(optimizer)
    row = row_spec(row)
    mask = None if mask is None else np.asarray(mask, bool)
    return TrainProgram(model, process, optimizer, tx, recipe, row, mask, num_classes, mesh,
                        abstract_train_state(model, tx, row, mesh))
