"""The masked-diffusion family on the embedded demo cohort (`genodiff run`, `make demo`): a small
`snp_unet` over windows of 4096 SNPs, about a minute of training on 2 CPU cores: at most 304 steps,
fewer when val_bits has not improved by 1e-4 bits per token for 3 evaluations (every 50 steps), and
never more than 3 minutes, so that `make demo` stays within its 10 minutes on a slower machine.

    genodiff train --data runs/demo/data --workdir runs/demo/train_masked \\
        --config experiments/demo_masked.py
    genodiff sample --workdir runs/demo/train_masked --n 300 --labels train \\
        --out runs/demo/synthetic_masked

The demo cohort's two contigs (10,546 SNPs) are laid end to end, 10 Mb apart, and cut into three
overlapping windows; sampling generates them left to right, each inpainting its overlap.
`:smoke` is the CI-sized version.
"""

from __future__ import annotations

import ml_collections

from experiments import masked


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = masked.get_config("smoke" if arg == "smoke" else None)
    if arg not in (None, "smoke"):
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    if arg is None:
        c.model.kwargs.channels = (64, 96, 128)
        # The population prior as well as the input: the network starts at per-population
        # independent sites and stays there (it learns no LD in the demo's budget either way), where
        # the input alone ended below them at its step cap. On the demo (runs/probe, 2026-12-07,
        # `evaluate --seeds 1`): val_bits 0.1638 (best at step 50) against 0.1723 at the cap;
        # AF r per class 0.998 against 0.984 (independent sites 0.998), LD r 0.208 against 0.045
        # (0.216), two-sample AUC 0.783 against 0.822 (0.700), membership 0.545 against 0.539.
        c.model.kwargs.population_prior = True
        c.diffusion.window = 4096
        c.diffusion.overlap = 256
        c.diffusion.num_steps = 16
        c.train.num_steps = 304  # the step cap: 6 epochs of 270 people x 3 windows at 16 a step
        # 150 steps without a gain of min_delta (1e-4); with the prior the demo's best is at
        # step 50 and later evaluations read the same (runs/demo6: 0.1638 at 50-250)
        c.train.early_stopping.patience = 3
        c.train.max_minutes = 3.0
        c.optim.warmup_steps = 50
        c.eval.every_steps = 50
        c.checkpoint.every_steps = 100
        c.log.every_steps = 25
    return c
