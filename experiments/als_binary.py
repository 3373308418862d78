"""Binary case/control, the paper's ALS setting (DESIGN 1.4) on the embedded cohort's simulated
trait: the same MLP + CNN recipe as the 1KG run, conditioned on the `trait` column (2 classes).

    genodiff simulate --out runs/als/cohort --preset bench
    genodiff prepare --vcf runs/als/cohort/cohort.vcf.gz --panel runs/als/cohort/cohort.panel \
        --genes runs/als/cohort/genes.bed --label trait --out runs/als/data
    genodiff train --data runs/als/data --workdir runs/als/train --config experiments/als_binary.py

`:smoke` (CI): the demo cohort, a tiny model, 20 steps:

    genodiff simulate --out runs/als_smoke/cohort --preset demo
    genodiff prepare --vcf runs/als_smoke/cohort/cohort.vcf.gz \
        --panel runs/als_smoke/cohort/cohort.panel --genes runs/als_smoke/cohort/genes.bed \
        --label trait --out runs/als_smoke/data
    genodiff train --data runs/als_smoke/data --workdir runs/als_smoke/train \
        --config experiments/als_binary.py:smoke

The reference samples cases at the cohort's rate (0.3067 for ALS); with 2 classes label dropout
matters more, since guidance is the only lever on the case/control contrast.
"""

from __future__ import annotations

import ml_collections

from experiments import base, paper_1kg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_1kg.get_config()
    # 10,405 people in the ALS cohort against 2,504 in 1KG: 4x the steps per epoch, so evaluate and
    # checkpoint less often per epoch.
    c.eval.every_steps = 250
    c.checkpoint.every_steps = 1000
    c.model.kwargs = ml_collections.ConfigDict(base.MLP_CNN_PAPER)
    if arg == "smoke":
        paper_1kg.smoke(c)
    elif arg:
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    return c
