"""The masked-diffusion family on the 1000 Genomes LCT region (2504 people, 7643 SNPs, phased: one
window of 7680 SNPs x 2 haplotypes), on CPU. `bash experiments/lct_masked.sh` runs it beside the
gene-PCA model and writes one report:

    genodiff prepare --vcf ../shared/data/1kg_lct_chr2.vcf.gz \\
        --panel ../shared/data/1kg_lct_chr2.panel --genes ../shared/data/genes_grch37.bed \\
        --out runs/lct/data --label pop
    genodiff train --data runs/lct/data --workdir runs/lct/masked --config experiments/lct_masked.py
    genodiff sample --workdir runs/lct/masked --n 2504 --labels train --out runs/lct/syn_masked

Training ends when val_bits has not improved by 1e-4 bits per token for 5 evaluations (every 250
steps, so 1250 steps, about 10 minutes), after 32 epochs (4506 steps, 2214 s measured on 2 cores),
or after 45 minutes, whichever comes first. `sample` takes the family's settings from this config
(ancestral unmasking, 32 steps, temperature 1, no guidance). `:smoke` is the CI-sized version.
"""

from __future__ import annotations

import ml_collections

from experiments import masked


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = masked.get_config("smoke" if arg == "smoke" else None)
    if arg not in (None, "smoke"):
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    if arg is None:
        c.train.num_steps = 4506  # the step cap: 32 epochs of 2253 people at 16 a step, ~37 minutes
        c.train.max_minutes = 45.0
        c.diffusion.num_steps = 32
    return c
