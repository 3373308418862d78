"""The masked-diffusion family (DESIGN 6) on genotype tokens: the base for its experiments.

    genodiff prepare --vcf COHORT.vcf.gz --panel COHORT.panel --genes GENES.bed --out DATA
    genodiff train --data DATA --workdir W --config experiments/masked.py
    genodiff sample --workdir W --n N --labels train --out OUT

Keys beyond experiments/base.py: diffusion.process = "masked" with schedule (linear, cosine,
polynomial) and schedule_kwargs (e.g. {"exponent": 2.0}), tokens ("haplotypes": both of a person's
haplotypes, generated jointly; "genotypes": dosages), window / overlap (SNPs an example holds; a
longer region is cut into overlapping windows and generated window by window, each inpainting its
overlap), num_steps (sampling steps K by default), t_min. model: `snp_unet`, a U-Net over patches
of SNPs; model.kwargs.population_input (on) puts the person's population's smoothed allele
frequency in each SNP's input vector, so the label reaches every SNP directly instead of only
through FiLM: on LCT it lifts the SNP-level recovery from 0.38 to 0.64, equal to per-population
independent sites (README, "The population's frequencies as input"). model.kwargs.population_prior
(off) adds the log probabilities of the person's population to the logits instead; it sat at
per-population independent sites on LCT (val_bits 0.0624 from step 250 to 1500, baseline 0.0651)
where the input model goes on to learn LD (0.0324 at step 4150). `:smoke` turns both on, so CI
trains, samples and imputes through both. sampling: ancestral unmasking,
options temperature, min_p, spacing ("uniform" or "cosine"). The checkpoint kept is the lowest
validation ELBO (`val_bits`, bits per token). Training ends when val_bits has not improved by
train.early_stopping.min_delta for train.early_stopping.patience evaluations, at the time cap
train.max_minutes or at the step cap train.num_steps, whichever comes first (experiments/base.py);
metrics.jsonl and `genodiff train` say which. `:smoke` shrinks everything for CI (20 steps, 2
evaluations: early stopping is on but cannot end it).
"""

from __future__ import annotations

import ml_collections

from experiments import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base.get_config()
    c.model.name = "snp_unet"
    c.model.kwargs = ml_collections.ConfigDict(dict(
        patch=16, snp_width=24, distance_dim=16, channels=(96, 128, 192), num_res_blocks=1,
        num_heads=4, head_channels=32, num_groups=16, dropout=0.1, population_prior=False,
        population_input=True))
    c.diffusion = ml_collections.ConfigDict(dict(
        process="masked", schedule="linear", schedule_kwargs=ml_collections.ConfigDict(),
        tokens="haplotypes", window=8192, overlap=512, num_steps=32, t_min=1e-4))
    c.train.batch_size = 16
    # The step cap (and the length of the lr schedule) in steps, not epochs: a step costs the same
    # tokens whatever the cohort's size, and 40 epochs of a 360-person cohort (900 steps) are far
    # from convergence. Early stopping ends a run that has converged (or overfits) sooner.
    c.train.num_epochs = 0.0
    c.train.num_steps = 6000
    # Until val_bits stops improving: 5 evaluations (1250 steps) without a gain of 1e-4 bits per
    # token end the run, and so do 4 hours of training, whichever comes first.
    c.train.early_stopping.patience = 5
    c.train.early_stopping.min_delta = 1e-4
    c.train.max_minutes = 240.0
    c.train.ema_decay = 0.999
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 200
    c.optim.clip_grad_norm = 1.0
    c.eval.batch_size = 16
    c.eval.every_steps = 250  # often enough for the patience to mean something
    c.checkpoint.every_steps = 500
    c.log.every_steps = 50
    c.sampling = ml_collections.ConfigDict(dict(
        sampler="ancestral", steps=0, guidance=0.0,
        options=ml_collections.ConfigDict({"temperature": 1.0})))
    if arg == "smoke":
        c.model.kwargs = ml_collections.ConfigDict(dict(
            patch=2, snp_width=8, distance_dim=8, channels=(16, 32), num_res_blocks=1,
            num_heads=2, head_channels=8, num_groups=4, dropout=0.1, population_prior=True,
            population_input=True))
        c.diffusion.window = 256
        c.diffusion.overlap = 32
        c.diffusion.num_steps = 8
        c.train.batch_size = 8
        c.train.num_epochs = 0.0
        c.train.num_steps = 20
        c.optim.warmup_steps = 5
        c.eval.batch_size = 8
        c.eval.every_steps = 10
        c.checkpoint.every_steps = 10
        c.log.every_steps = 5
    elif arg:
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    return c
