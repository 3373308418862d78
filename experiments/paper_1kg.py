"""The paper's 1000 Genomes run (DESIGN 1.2-1.4): MLP + CNN denoiser, 26 populations, features
26,624 x 8, T = 500 cosine, eps prediction, Adam 2e-4 with 100 warm-up steps and cosine decay,
batch 32, 100 epochs; the checkpoint kept is the lowest validation reconstruction error.

    genodiff prepare --vcf 1kg/ALL.autosomes.phase3.vcf.gz \
        --panel 1kg/integrated_call_samples.panel --genes refgene_grch37.bed --label pop \
        --out data/1kg
    genodiff train --data data/1kg --workdir runs/paper_1kg --config experiments/paper_1kg.py

`:smoke` is the same recipe with a tiny model and 20 steps, for CI or a laptop on any prepared
dataset (e.g. the LCT region of ../shared/data):

    genodiff train --data DATA --workdir runs/paper_1kg_smoke \
        --config experiments/paper_1kg.py:smoke

Differences from the reference, on purpose: labels are dropped with p = 0.1 (classifier-free
guidance needs it), PCA and z-scores are fitted on the training split only, and the EMA of the
parameters is what is evaluated and kept. `model.dtype = "bfloat16"` halves activation memory on
accelerators.
"""

from __future__ import annotations

import ml_collections

from experiments import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base.get_config()  # base is the paper's recipe; spelled out here so the run reads alone
    c.model.name = "mlp_cnn"
    c.model.kwargs = ml_collections.ConfigDict(base.MLP_CNN_PAPER)
    c.diffusion.schedule = "cosine"
    c.diffusion.num_steps = 500
    c.diffusion.prediction = "eps"
    c.train.batch_size = 32
    c.train.num_epochs = 100.0
    c.optim.learning_rate = 2e-4
    c.optim.warmup_steps = 100
    c.eval.every_steps = 100  # ~1.4 epochs of 1KG; cheap next to a step of a 463 M model
    c.checkpoint.every_steps = 500
    if arg == "smoke":
        smoke(c)
    elif arg:
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    return c


def smoke(c: ml_collections.ConfigDict) -> None:
    """Shrink a run to seconds on a CPU: a tiny MLP + CNN, T = 50, 20 steps."""
    c.model.kwargs = ml_collections.ConfigDict(dict(
        mlp_widths=(32, 16), mlp_bottleneck=16, mlp_dropout=0.0, base_channels=8,
        channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), num_heads=2, head_channels=8,
        cnn_dropout=0.1, num_groups=4, mix_hidden=16))
    c.diffusion.num_steps = 50
    c.train.batch_size = 16
    c.train.num_epochs = 0.0
    c.train.num_steps = 20
    c.optim.learning_rate = 1e-3
    c.optim.warmup_steps = 5
    c.eval.batch_size = 32
    c.eval.every_steps = 10
    c.checkpoint.every_steps = 10
    c.log.every_steps = 5
