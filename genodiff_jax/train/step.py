"""The pure train step and the evaluation function, and their one-time jit with explicit shardings.

`data` is a whole split resident on the devices, {"x" [n_pad, ...] (an array, or a dict of arrays
with rows first), "labels" [n_pad], "n" int32 scalar}, sharded by rows (`data.loader.put_data`);
each step gathers its batch inside the compiled program by indices drawn from
`fold_in(key, state.step)`, so no batch ever crosses from the host. What corrupts the batch and what
the loss is belong to the diffusion process (`diffusion.process`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from genodiff_jax.diffusion.process import Process
from genodiff_jax.sharding import batch_sharding, replicated
from genodiff_jax.train.state import TrainState

Data = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
TrainStepFn = Callable[[TrainState, Data, jax.Array], tuple[TrainState, Metrics]]
EvalFn = Callable[[Any, Data, jax.Array], Metrics]


@dataclasses.dataclass(frozen=True)
class StepRecipe:
    """What a train step does besides the process: batch size, label dropout for classifier-free
    guidance, EMA decay, gradient accumulation (steps per optimiser update)."""

    batch_size: int
    p_uncond: float = 0.1
    ema_decay: float = 0.999
    grad_accum_steps: int = 1


def data_shardings(mesh: Mesh) -> dict:
    """Rows of x and labels split over "data"; the row count replicated."""
    return {"x": batch_sharding(mesh), "labels": batch_sharding(mesh), "n": replicated(mesh)}


def gather_batch(data: Data, idx_B: jax.Array,
                 sharding: jax.sharding.Sharding | None) -> tuple[jax.Array, jax.Array]:
    """(x0 rows [B, ...], labels [B]) at rows idx_B, split over the mesh."""
    x0 = jax.tree.map(lambda a: a[idx_B], data["x"])
    y_B = data["labels"][idx_B]
    if sharding is not None:
        x0 = jax.lax.with_sharding_constraint(x0, sharding)
        y_B = jax.lax.with_sharding_constraint(y_B, sharding)
    return x0, y_B


def _as_mask(mask: np.ndarray | jax.Array | None) -> jax.Array | None:
    return None if mask is None else jnp.asarray(mask, bool)


def make_train_step(
    model: nn.Module,
    process: Process,
    tx: optax.GradientTransformation,
    recipe: StepRecipe,
    *,
    mask: np.ndarray | jax.Array | None,
    num_classes: int,
    lr_schedule: optax.Schedule,
    mesh: Mesh | None = None,
) -> TrainStepFn:
    """A pure `(state, data, key) -> (state, metrics)`; metrics: loss, grad_norm, lr.

    One step: rows ~ U{0..n-1} (with replacement), times and noise from the process, labels replaced
    by the null class (`num_classes`) with probability `p_uncond`, the process's loss of the model
    called at the process's `model_time`. Under gradient accumulation (`tx` a MultiSteps) the EMA
    moves only on the micro-steps where the optimiser applies an update. The EMA decay is warmed
    up as min(ema_decay, (1 + u) / (10 + u)) over updates u, so short runs get a useful EMA.
    """
    mask = _as_mask(mask)
    shard = batch_sharding(mesh) if mesh is not None else None
    B, accum = recipe.batch_size, recipe.grad_accum_steps

    def train_step(state: TrainState, data: Data, key: jax.Array) -> tuple[TrainState, Metrics]:
        key = jax.random.fold_in(key, state.step)
        idx_key, t_key, noise_key, drop_key, dropout_key = jax.random.split(key, 5)
        idx_B = jax.random.randint(idx_key, (B,), 0, data["n"])
        x0, y_B = gather_batch(data, idx_B, shard)
        x0 = process.as_input(x0, mask)
        t_B = process.time(t_key, (B,))
        noise = process.noise(noise_key, x0)
        drop_B = jax.random.bernoulli(drop_key, recipe.p_uncond, (B,))
        y_B = jnp.where(drop_B, num_classes, y_B).astype(jnp.int32)

        def loss_fn(params):
            def net(x_t, t):
                return model.apply({"params": params}, x_t, process.model_time(t), y_B,
                                   train=True, rngs={"dropout": dropout_key})

            return process.loss(net, x0, t_B, noise, mask)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        num_updates = state.step // accum  # updates applied before this step
        decay = jnp.minimum(recipe.ema_decay, (1.0 + num_updates) / (10.0 + num_updates))
        ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                                  state.ema_params, params)
        if accum > 1:
            updated = tx.has_updated(opt_state)
            ema_params = jax.tree.map(lambda new, old: jnp.where(updated, new, old),
                                      ema_params, state.ema_params)
        new_state = state.replace(step=state.step + 1, params=params, ema_params=ema_params,
                                  opt_state=opt_state)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
                   "lr": jnp.asarray(lr_schedule(num_updates), jnp.float32)}
        return new_state, metrics

    return train_step


def make_eval_fn(
    model: nn.Module,
    process: Process,
    *,
    mask: np.ndarray | jax.Array | None,
    batch_size: int,
    num_rows: int,
    mesh: Mesh | None = None,
) -> EvalFn:
    """A pure `(params, data, key) -> metrics` over all `n` rows of a split: the process's
    validation terms (Gaussian: val_loss and val_recon) averaged over rows, true labels.

    Each row gets its own time and noise from fold_in(key, row): pass the same key every time, so
    values at different steps differ by the model only, whatever the chunk size or mesh.
    `num_rows` is the padded row count of `data` (static: it sets the number of chunks).
    """
    mask = _as_mask(mask)
    shard = batch_sharding(mesh) if mesh is not None else None
    num_chunks = math.ceil(num_rows / batch_size)

    def eval_fn(params, data: Data, key: jax.Array) -> Metrics:
        n = data["n"]
        row = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), data["x"])

        def draw(row_key: jax.Array) -> tuple[jax.Array, jax.Array]:
            t_key, noise_key = jax.random.split(row_key)
            return process.time(t_key, ()), process.noise(noise_key, row)

        def chunk(c):
            rows_B = c * batch_size + jnp.arange(batch_size)
            valid_B = (rows_B < n).astype(jnp.float32)
            x0, y_B = gather_batch(data, jnp.minimum(rows_B, n - 1), shard)
            x0 = process.as_input(x0, mask)
            # Draws keyed by row, not by chunk: the metric does not depend on the chunk size.
            t_B, noise = jax.vmap(lambda r: draw(jax.random.fold_in(key, r)))(rows_B)

            def net(x_t, t):
                return model.apply({"params": params}, x_t, process.model_time(t), y_B,
                                   train=False)

            terms = process.eval_terms(net, x0, t_B, noise, mask, valid_B)
            # The terms are batch means of per-row values: times B gives the sum over rows.
            return {k: v * batch_size for k, v in terms.items()}

        sums = jax.lax.map(chunk, jnp.arange(num_chunks))
        count = n.astype(jnp.float32)
        return {k: jnp.sum(v) / count for k, v in sums.items()}

    return eval_fn


def jit_train_step(step_fn: TrainStepFn, state_shardings: TrainState, mesh: Mesh):
    """Jit once: state replicated and donated, data split by rows, key and metrics replicated."""
    repl = replicated(mesh)
    return jax.jit(
        step_fn,
        in_shardings=(state_shardings, data_shardings(mesh), repl),
        out_shardings=(state_shardings, repl),
        donate_argnums=(0,),
    )


def jit_eval_fn(eval_fn: EvalFn, params_shardings: Any, mesh: Mesh):
    """Jit the eval function: params as held, data split by rows, metrics replicated."""
    repl = replicated(mesh)
    return jax.jit(eval_fn, in_shardings=(params_shardings, data_shardings(mesh), repl),
                   out_shardings=repl)
