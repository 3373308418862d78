"""The embedded demo cohort (`genodiff run`, `make demo`): a small MLP + CNN, under 2 minutes on
2 CPU cores.

    genodiff simulate --out runs/demo/cohort
    genodiff prepare --vcf runs/demo/cohort/cohort.vcf.gz --panel runs/demo/cohort/cohort.panel \
        --genes runs/demo/cohort/genes.bed --out runs/demo/data
    genodiff train --data runs/demo/data --workdir runs/demo/train --config experiments/demo.py

`:smoke` shrinks it to a few seconds (CI). The demo cohort has 3 populations, 300 people and
features of shape (128, 8); the paper-size model would be mostly idle parameters there, so this one
is smaller.

Two keys differ from the paper's recipe (base.py), both chosen by measurement (README, "A sparse
genome-wide panel" and "Schedule study"): the network predicts v, not eps, and sees the schedule's
log-SNR, not t / T. With eps, x0_hat = (x_t - sigma eps_hat) / alpha multiplies the network's error
by sigma / alpha, which made sampled features too wide on sparse panels (std 2.0, training 1.0) and
made few-step ODE samplers poor on the cosine and sigmoid schedules; v fixes both.
"""

from __future__ import annotations

import ml_collections

from experiments import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base.get_config()
    c.diffusion.prediction = "v"
    c.diffusion.time_input = "logsnr"
    c.model.name = "mlp_cnn"
    c.model.kwargs = ml_collections.ConfigDict(dict(
        mlp_widths=(256, 128), mlp_bottleneck=64, mlp_dropout=0.0,
        base_channels=16, channel_mult=(1, 2, 2, 4), num_res_blocks=1, attention_ds=(8,),
        num_heads=2, head_channels=16, cnn_dropout=0.1, num_groups=8, mix_hidden=32))
    c.train.num_epochs = 100.0  # 270 training rows / 32 -> 844 steps, ~1.5 min on 2 cores
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 50
    c.train.ema_decay = 0.995
    c.eval.every_steps = 200
    c.checkpoint.every_steps = 200
    c.log.every_steps = 25
    if arg == "smoke":
        c.model.kwargs.mlp_widths = (32, 16)
        c.model.kwargs.mlp_bottleneck = 16
        c.model.kwargs.base_channels = 8
        c.model.kwargs.channel_mult = (1, 2)
        c.model.kwargs.attention_ds = (2,)
        c.model.kwargs.head_channels = 8
        c.model.kwargs.num_groups = 4
        c.diffusion.num_steps = 50
        c.train.num_epochs = 0.0
        c.train.num_steps = 20
        c.optim.warmup_steps = 5
        c.eval.every_steps = 10
        c.checkpoint.every_steps = 10
        c.log.every_steps = 5
    elif arg:
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    return c
