"""The masked-diffusion family on the 1000 Genomes LCT region (2504 people, 7643 SNPs, phased: one
window of 7680 SNPs x 2 haplotypes), on CPU. `bash experiments/lct_masked.sh` runs it beside the
gene-PCA model and writes one report:

    genodiff prepare --vcf ../shared/data/1kg_lct_chr2.vcf.gz \\
        --panel ../shared/data/1kg_lct_chr2.panel --genes ../shared/data/genes_grch37.bed \\
        --out runs/lct/data --label pop
    genodiff train --data runs/lct/data --workdir runs/lct/masked --config experiments/lct_masked.py
    genodiff sample --workdir runs/lct/masked --n 2504 --labels train --out runs/lct/syn_masked

`sample` takes the family's settings from this config (ancestral unmasking, 32 steps, temperature 1,
no guidance). `:smoke` is the CI-sized version.
"""

from __future__ import annotations

import ml_collections

from experiments import masked


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = masked.get_config("smoke" if arg == "smoke" else None)
    if arg not in (None, "smoke"):
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    if arg is None:
        c.train.num_epochs = 32.0  # 2253 people / 16 -> 4506 steps, about 40 minutes on 2 cores
        c.diffusion.num_steps = 32
    return c
