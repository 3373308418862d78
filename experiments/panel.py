"""The panel family (issue 26): the masked family's `snp_unet` with a copying head over a
reference panel (`snp_panel`), trained with leave-one-out panels from the training split.

    genodiff train --data DATA --workdir W --config experiments/panel.py
    genodiff sample --workdir W --n N --labels train --out OUT

Keys beyond experiments/masked.py: diffusion.process = "masked_panel" with panel_size (R reference
rows a person reads: haplotypes, or dosage rows), panel_from ("neighbours": the rows nearest
the person's own, a generated person's anchors', a haplotype of their class for each of theirs;
"class": random rows of the person's class in the training split; "any": everyone in it) and
panel_match (how nearness counts a matching token, `data.panels.MATCHES`: "rare_sharing", 1 /
the value's frequency among the rows, or "agreement", 1); model.kwargs.copy_width (the copying
score's hidden units), scales (SNPs on each side over which agreement with a panel row is
counted) and row_owner (the score sees which of a person's rows a panel row was drawn for).
Everything else is experiments/masked.py's (windows, early stopping, ancestral sampling), but the
sampling grid's spacing is cosine and draws are at temperature 0.95.
`:smoke` is the CI-sized version.
"""

from __future__ import annotations

import ml_collections

from experiments import masked

# The panel's size and the copying head's, and the CI-sized ones.
SIZES = {"full": dict(panel_size=16, scales=(8, 64, 512), copy_width=32),
         "smoke": dict(panel_size=4, scales=(4, 16), copy_width=8)}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "smoke"):
        raise ValueError(f"unknown argument {arg!r} (expected nothing or 'smoke')")
    return with_panel(masked.get_config(arg), smoke=arg == "smoke")


def with_panel(c: ml_collections.ConfigDict, smoke: bool = False) -> ml_collections.ConfigDict:
    """A masked-family config `c` turned into the panel family's."""
    sizes = SIZES["smoke" if smoke else "full"]
    c.model.name = "snp_panel"
    c.model.kwargs.copy_width = sizes["copy_width"]
    c.model.kwargs.scales = sizes["scales"]
    # A row's copying score sees whether it was drawn for this haplotype (models/snp_panel.py), so
    # a haplotype copies its own neighbourhood, not its other haplotype's. On LCT (full report,
    # runs/lct_owner against runs/lct_panel3, README "Ownership, the full report") it took NNAA
    # truth / syn 0.745 / 0.543 -> 0.574 / 0.489 (real held-out 0.495 / 0.526), LD r at n held-out
    # 0.764 -> 0.800 (real 0.803), two-sample AUC 0.509 -> 0.551, membership 0.527 -> 0.532.
    # Runs trained without it (config.json without the key) load with it off.
    c.model.kwargs.row_owner = True
    c.diffusion.process = "masked_panel"
    c.diffusion.panel_size = sizes["panel_size"]
    # A person reads the rows nearest their own (a generated person, anchors' of their class, a
    # different person's haplotype for each of theirs): real people share long stretches with a
    # few others, not with 16 random ones. On LCT (benchmarks/panel_sampling_probe.py,
    # runs/lct_panel2's model trained on class panels, 400 people, 32 cosine steps) class ->
    # neighbours at sampling took LD r 0.752 -> 0.806; one anchor a haplotype instead of one a
    # person took the membership AUC 0.538 -> 0.504 (runs/lct_panel3, 800 people, temperature 0.9).
    c.diffusion.panel_from = "neighbours"
    # Nearness counts a match on a value 1 / its frequency among the training rows (a shared rare
    # allele is the mark of recent common ancestry), not 1 for every match, which made hubs of
    # the haplotypes richest in common alleles (data/panels.py). On the demo (runs/demo8 against
    # runs/demo7, the same data and 200 steps): val_bits 0.049 -> 0.035, AF r per class 0.990 ->
    # 0.996 (independent sites 0.998), LD r 0.793 -> 0.849 (real 0.744). On LCT (runs/lct_rare
    # against runs/lct): val_bits 0.00409 -> 0.00358 and the rare bin's imputation r^2 0.727 ->
    # 0.739 (Beagle 0.758); the full report in README "Rare alleles choose the panel".
    c.diffusion.panel_match = "rare_sharing"
    # Cosine spacing reveals few tokens in the first steps, so a person's first alleles settle which
    # rows they copy before the rest are drawn. On LCT (runs/lct_panel2, 400 people, 32 steps)
    # uniform -> cosine took LD r 0.659 -> 0.752 and the two-sample AUC 0.759 -> 0.690.
    c.sampling.options.spacing = "cosine"
    # Draws at temperature 0.95: at 1 a run trained on rare-sharing panels spreads its people too
    # far apart (LCT, runs/lct_rare, 2504 people: NNAA truth / syn 0.631 / 0.417, real held-out
    # 0.496 / 0.526); at 0.95 (runs/lct_rare/report_t095_full) 0.585 / 0.471, the two-sample AUC
    # 0.520 -> 0.529 (real 0.526), identical genomes 7 -> 21 of 2504 (real 4 of 251), the median
    # longest identical run 5566 -> 6035 (real 6311), LD r at n held-out 0.816 -> 0.828 (real
    # 0.803), SNP LR recovery 0.777 -> 0.840. On the demo (runs/demo8, 300 people, 30 held out):
    # two-sample 0.678 -> 0.689, membership 0.585 -> 0.598, LD r at n 0.627 -> 0.642 (real 0.744).
    # 0.9 copies more than real people do (runs/lct_panel3: 49 identical of 2504).
    c.sampling.options.temperature = 0.95
    return c
