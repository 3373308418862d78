"""A schedule study on the demo cohort: noise schedule x prediction target, each trained at one
budget and judged by a sampler sweep (`genodiff sweep --train`, genodiff_jax/sweep/study.py).

    genodiff simulate --out runs/demo/cohort
    genodiff prepare --vcf runs/demo/cohort/cohort.vcf.gz --panel runs/demo/cohort/cohort.panel \
        --genes runs/demo/cohort/genes.bed --out runs/demo/data
    genodiff sweep --train --data runs/demo/data --study experiments/study_schedules.py \
        --out runs/study_schedules

3 schedules x 2 targets, the demo model for 50 epochs each; each cell swept over 2 samplers x
2 step counts on 300 people. The network sees t / T in every cell (demo.py's log-SNR input is
measured apart, README). `:smoke` is two tiny cells and one sweep cell (CI, seconds), on a tiny
MLP (`mlp_unet`) instead of the demo's MLP + CNN: the study is what CI checks, not the model, and
the MLP's train step compiles in a fraction of the time.
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.base = "experiments/demo.py"
    # (dotted config key, values) pairs: the cells are their product, in this order.
    c.grid = (("diffusion.schedule", ("cosine", "linear", "sigmoid")),
              ("diffusion.prediction", ("eps", "v")))
    # every cell: the budget, and the time input the README's table was measured with (t / T)
    c.overrides = (("train.num_epochs", 50.0), ("diffusion.time_input", "t"))
    c.sweep = {"samplers": ["ancestral", "dpmpp"], "steps": [25, 100], "n": 300}
    if arg == "smoke":
        c.base = "experiments/demo.py:smoke"
        c.grid = (("diffusion.schedule", ("cosine", "linear")), ("diffusion.prediction", ("eps",)))
        c.overrides = (("model.name", "mlp_unet"),
                       ("model.kwargs", {"widths": (16, 8), "bottleneck": 8, "num_groups": 4}))
        c.sweep = {"samplers": ["ddim"], "steps": [5], "n": 8,
                   "measures": ["af_r", "frechet"]}
    elif arg:
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    return c
