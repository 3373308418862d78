"""Training: the state, the pure step, checkpoints, metrics and the loop (DESIGN 3)."""

from genodiff_jax.train.checkpoint import CheckpointStore, restore_params
from genodiff_jax.train.loop import (
    NonFiniteLossError,
    TrainedModel,
    load_config,
    load_trained,
    run_training,
    train,
)
from genodiff_jax.train.state import (
    OptimizerConfig,
    TrainState,
    abstract_train_state,
    create_train_state,
    make_lr_schedule,
    make_optimizer,
)
from genodiff_jax.train.step import (
    jit_eval_fn,
    jit_train_step,
    make_eval_fn,
    make_train_step,
    put_data,
)

__all__ = [
    "CheckpointStore",
    "NonFiniteLossError",
    "OptimizerConfig",
    "TrainState",
    "TrainedModel",
    "abstract_train_state",
    "create_train_state",
    "jit_eval_fn",
    "jit_train_step",
    "load_config",
    "load_trained",
    "make_eval_fn",
    "make_lr_schedule",
    "make_optimizer",
    "make_train_step",
    "put_data",
    "restore_params",
    "run_training",
    "train",
]
