"""The train state (a plain pytree), the optimiser, and sharded initialisation
without a device-0 detour."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from genodiff_jax.sharding import put_replicated, replicated

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything a resumed run needs; the RNG is not here (each step uses fold_in(key, step)).

    step: int32 scalar, the number of train-step calls so far (micro-steps under accumulation).
    """

    step: jax.Array
    params: PyTree
    ema_params: PyTree
    opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam with linear warm-up then cosine decay, optional clipping and gradient accumulation.

    `warmup_steps` and `total_steps` count optimiser updates, i.e. train steps / grad_accum_steps.
    `clip_grad_norm` <= 0 means no clipping (the reference does not clip).
    """

    learning_rate: float = 2e-4
    warmup_steps: int = 100
    total_steps: int = 10_000
    end_lr_factor: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_grad_norm: float = 0.0
    grad_accum_steps: int = 1


def make_lr_schedule(cfg: OptimizerConfig) -> optax.Schedule:
    """lr(update count): 0 -> peak over warmup_steps, then cosine to end_lr_factor * peak."""
    warmup = max(0, min(cfg.warmup_steps, cfg.total_steps - 1))
    # optax needs a decay phase of at least one step after the warm-up.
    total = max(cfg.total_steps, warmup + 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=warmup,
        decay_steps=total,
        end_value=cfg.learning_rate * cfg.end_lr_factor,
    )


def make_optimizer(cfg: OptimizerConfig) -> optax.GradientTransformation:
    """The optimiser chain; wrapped in `optax.MultiSteps` when grad_accum_steps > 1."""
    if cfg.grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be >= 1, got {cfg.grad_accum_steps}")
    lr = make_lr_schedule(cfg)
    parts = []
    if cfg.clip_grad_norm > 0:
        parts.append(optax.clip_by_global_norm(cfg.clip_grad_norm))
    if cfg.weight_decay > 0:
        parts.append(optax.adamw(lr, cfg.b1, cfg.b2, cfg.eps, weight_decay=cfg.weight_decay))
    else:
        parts.append(optax.adam(lr, cfg.b1, cfg.b2, cfg.eps))
    tx = optax.chain(*parts)
    if cfg.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum_steps)
    return tx


RowSpec = tuple[int, ...] | jax.ShapeDtypeStruct | dict


def row_spec(row: RowSpec) -> Any:
    """One example's shapes and dtypes (a ShapeDtypeStruct, or a dict of them); a bare shape
    means float32 features."""
    if isinstance(row, tuple) and all(isinstance(d, int) for d in row):
        return jax.ShapeDtypeStruct(tuple(row), jnp.float32)
    return row


def init_params(model: nn.Module, key: jax.Array, row: RowSpec) -> PyTree:
    """`model.init` on one zero example of `row` (shape and dtype of one example)."""
    x_1 = jax.tree.map(lambda s: jnp.zeros((1, *s.shape), s.dtype), row_spec(row))
    t_1 = jnp.zeros((1,), jnp.float32)
    y_1 = jnp.zeros((1,), jnp.int32)
    params_key, dropout_key = jax.random.split(key)
    return model.init({"params": params_key, "dropout": dropout_key}, x_1, t_1, y_1,
                      train=False)["params"]


def abstract_params(model: nn.Module, row: RowSpec) -> PyTree:
    """The params pytree as ShapeDtypeStructs (nothing allocated)."""
    return jax.eval_shape(lambda k: init_params(model, k, row), jax.random.key(0))


def init_state(
    model: nn.Module, tx: optax.GradientTransformation, key: jax.Array, row: RowSpec
) -> TrainState:
    """A fresh state (pure, traceable): params from `init_params`, EMA = params, optimiser
    state."""
    params = init_params(model, key, row)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        # A real copy: EMA and params are donated together, and must not alias one buffer.
        ema_params=jax.tree.map(jnp.copy, params),
        opt_state=tx.init(params),
    )


def state_shardings(abstract_state: TrainState, mesh: Mesh) -> TrainState:
    """Sharding for every leaf: replicated (pure data parallelism)."""
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)


def abstract_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    row: RowSpec,
    mesh: Mesh,
) -> TrainState:
    """The state's shapes, dtypes and shardings as `jax.ShapeDtypeStruct`s (a restore target)."""
    abstract = jax.eval_shape(lambda k: init_state(model, tx, k, row), jax.random.key(0))
    shardings = state_shardings(abstract, mesh)
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    key: jax.Array,
    row: RowSpec,
    mesh: Mesh,
) -> TrainState:
    """Initialise directly into the target shardings
    (eval_shape -> shardings -> jit(out_shardings)).

    Nothing is built on device 0 and copied out afterwards, which matters when params are large.
    """
    abstract = jax.eval_shape(lambda k: init_state(model, tx, k, row), key)
    shardings = state_shardings(abstract, mesh)
    init = jax.jit(
        lambda k: init_state(model, tx, k, row),
        in_shardings=replicated(mesh),
        out_shardings=shardings,
    )
    return init(put_replicated(key, mesh))
