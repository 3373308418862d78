"""The base config: the defaults shared by every run (the paper's 1KG recipe, DESIGN 1.2-1.3),
overridden per experiment, and the schema every config is checked against (`train.schema`).

Not a run by itself; it is what the configs of experiments/ start from (experiments/base.py is
this file's `get_config`):

    genodiff train --data DATA --workdir W --config experiments/base.py

Keys
- seed: the one seed (init, batches, noise, label dropout, evaluation draws).
- model.name: a registered denoiser (mlp_unet, cnn_unet, mlp_cnn, transformer); model.kwargs: its
  size fields; model.dtype: compute dtype, "float32" or "bfloat16" (params stay float32);
  model.ops: the layer set, "fast" (CPU-tuned GroupNorm, dropout, Dense and attention) or "stock"
  (plain flax layers; same parameters, so checkpoints move between the two).
- diffusion.process: a registered diffusion process ("gaussian"); the other diffusion keys are its
  fields. Gaussian: schedule (cosine, linear, sigmoid) with schedule_kwargs (its
  hyper-parameters, e.g. {"s": 0.008} for cosine), num_steps (T), prediction (eps, v, x0),
  time_input ("t": the network sees t / T; "logsnr": the schedule's log-SNR mapped to [0, 1]).
- train.batch_size: rows per train step (global, split over devices); train.num_steps > 0 sets the
  length in steps, else train.num_epochs (rows drawn / training rows, rounded up to whole steps);
  train.grad_accum_steps: steps per optimiser update (optax.MultiSteps); train.p_uncond: label
  dropout for classifier-free guidance; train.ema_decay.
- When a run ends: at its step cap (the length above; it also sets the learning-rate schedule),
  or earlier at whichever comes first of: train.early_stopping.patience > 0 evaluations in a row
  that did not lower the best validation selection metric by at least
  train.early_stopping.min_delta (in that metric's units); train.max_minutes > 0 minutes of
  training, summed over the calls that resumed the run (checked at log and eval points). 0 turns
  either off (the default here). metrics.jsonl's last record, run.json and `genodiff train` say
  why the run stopped (`stop_reason`: converged, time_cap or step_cap); a stopped run started again
  trains no further. These keys (unlike the rest of `train`) may change when a run resumes:
  raising them lets a stopped run go on (genodiff_jax/train/stopping.py).
- optim: Adam, lr with linear warm-up (warmup_steps, in optimiser updates) then cosine decay to
  end_lr_factor * lr; clip_grad_norm <= 0 means no clipping (the reference does not clip).
- eval.every_steps, eval.batch_size, eval.use_ema: validation loss and reconstruction error on the
  test split; the best checkpoint is the lowest reconstruction error (the selection metric; the
  masked family's: val_bits), which early stopping watches too.
- checkpoint.every_steps / keep (latest steps kept) / async_save; log.every_steps, log.tensorboard.
- mesh.num_devices: devices on the ("data",) axis, 0 for all.
- sampling: what `genodiff sample` uses unless told otherwise: sampler, steps (0: all), guidance
  (w) and options (the sampler's own keywords, e.g. eta for ddim; clip_x0="data" clips x0
  predictions to the training range).
- distributed.coordinator_address: "" (one process), "auto", or host:port with num_processes and
  process_id, for jax.distributed.

These keys are the schema of every config: `load_config` refuses a key that is not here (naming
it and the file), except the diffusion process's own fields, the model's fields under model.kwargs
and the free-form diffusion.schedule_kwargs and sampling.options (genodiff_jax/train/schema.py).
"""

from __future__ import annotations

import ml_collections

# The paper's MLP + CNN denoiser at its published sizes (463 M parameters at 26,624 x 8).
MLP_CNN_PAPER = dict(
    mlp_widths=(1024, 512),
    mlp_bottleneck=256,
    mlp_dropout=0.0,
    base_channels=64,
    channel_mult=(1, 1, 1, 1, 2, 2, 3, 4),
    num_res_blocks=3,
    attention_ds=(32, 64),
    num_heads=4,
    head_channels=64,
    cnn_dropout=0.1,
    num_groups=32,
    mix_hidden=128,
)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The default config; `arg` is accepted for symmetry with the other files and must be empty."""
    if arg:
        raise ValueError(f"the base config takes no argument, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.name = "mlp_cnn"
    c.model.kwargs = ml_collections.ConfigDict(MLP_CNN_PAPER)
    c.model.dtype = "float32"
    c.model.ops = "fast"

    c.diffusion = ml_collections.ConfigDict()
    c.diffusion.process = "gaussian"
    c.diffusion.schedule = "cosine"
    c.diffusion.schedule_kwargs = ml_collections.ConfigDict()
    c.diffusion.num_steps = 500
    c.diffusion.prediction = "eps"
    c.diffusion.time_input = "t"

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32
    c.train.num_epochs = 100.0
    c.train.num_steps = 0
    c.train.grad_accum_steps = 1
    c.train.p_uncond = 0.1
    c.train.ema_decay = 0.999
    c.train.early_stopping = ml_collections.ConfigDict()
    c.train.early_stopping.patience = 0
    c.train.early_stopping.min_delta = 0.0
    c.train.max_minutes = 0.0

    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 2e-4
    c.optim.warmup_steps = 100
    c.optim.end_lr_factor = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.weight_decay = 0.0
    c.optim.clip_grad_norm = 0.0

    c.eval = ml_collections.ConfigDict()
    c.eval.every_steps = 500
    c.eval.batch_size = 64
    c.eval.use_ema = True

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 500
    c.checkpoint.keep = 1
    c.checkpoint.async_save = True

    c.log = ml_collections.ConfigDict()
    c.log.every_steps = 50
    c.log.tensorboard = True

    c.sampling = ml_collections.ConfigDict()
    c.sampling.sampler = "ancestral"
    c.sampling.steps = 0
    c.sampling.guidance = 0.1
    c.sampling.options = ml_collections.ConfigDict({"clip_x0": "data"})

    c.mesh = ml_collections.ConfigDict()
    c.mesh.num_devices = 0

    c.distributed = ml_collections.ConfigDict()
    c.distributed.coordinator_address = ""
    c.distributed.num_processes = 1
    c.distributed.process_id = 0
    return c
