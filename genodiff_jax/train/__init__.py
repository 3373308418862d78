"""Training: configs -> the run's program (state, pure step, evaluation), checkpoints, metrics and
the loop (DESIGN 3)."""

from genodiff_jax.train.checkpoint import CheckpointStore, restore_params
from genodiff_jax.train.config import (
    apply_overrides,
    load_config,
    model_from_config,
    optimizer_config,
    process_from_config,
    program_from_config,
    recipe_from_config,
)
from genodiff_jax.train.loop import NonFiniteLossError, run_training, train
from genodiff_jax.train.program import TrainProgram, build_program
from genodiff_jax.train.state import (
    OptimizerConfig,
    TrainState,
    abstract_params,
    make_lr_schedule,
    make_optimizer,
)
from genodiff_jax.train.step import StepRecipe, make_eval_fn, make_train_step
from genodiff_jax.train.trained import TrainedModel, load_trained

__all__ = [
    "CheckpointStore",
    "NonFiniteLossError",
    "OptimizerConfig",
    "StepRecipe",
    "TrainProgram",
    "TrainState",
    "TrainedModel",
    "abstract_params",
    "apply_overrides",
    "build_program",
    "load_config",
    "load_trained",
    "make_eval_fn",
    "make_lr_schedule",
    "make_optimizer",
    "make_train_step",
    "model_from_config",
    "optimizer_config",
    "process_from_config",
    "program_from_config",
    "recipe_from_config",
    "restore_params",
    "run_training",
    "train",
]
