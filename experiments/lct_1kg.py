"""The real-data example: 1000 Genomes LCT region (2504 people, 5 genes, features 128 x 8), on CPU.

    genodiff prepare --vcf ../shared/data/1kg_lct_chr2.vcf.gz \
        --panel ../shared/data/1kg_lct_chr2.panel \
        --genes ../shared/data/genes_grch37.bed --out runs/lct_pop/data --label pop
    genodiff train --data runs/lct_pop/data --workdir runs/lct_pop/train \
        --config experiments/lct_1kg.py
    genodiff sample --workdir runs/lct_pop/train --n 2504 --labels train --sampler dpmpp \
        --steps 50 --out runs/lct_pop/synthetic
    genodiff evaluate --data runs/lct_pop/data --synthetic runs/lct_pop/synthetic \
        --out runs/lct_pop/report

and the same with `--label super_pop` into runs/lct_super_pop (`bash experiments/lct_1kg.sh` runs
both). The paper's recipe (100 epochs, batch 32, T = 500 cosine, p_uncond 0.1) with demo.py's
MLP + CNN, v prediction and log-SNR time input: the paper-sized CNN at 128 gene slots is most of an
hour per run on 2 CPU cores. `:smoke` shrinks it for CI.
"""

from __future__ import annotations

import ml_collections

from experiments import demo


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = demo.get_config("smoke" if arg == "smoke" else None)
    if arg not in (None, "smoke"):
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    if arg is None:
        c.train.num_epochs = 100.0  # 2253 training rows / 32 -> 7041 steps
        c.eval.every_steps = 500
        c.checkpoint.every_steps = 500
        c.log.every_steps = 100
    return c
