"""The panel family (issue 26): the masked family's `snp_unet` with a copying head over a
reference panel (`snp_panel`), trained with leave-one-out panels from the training split.

    genodiff train --data DATA --workdir W --config experiments/panel.py
    genodiff sample --workdir W --n N --labels train --out OUT

Keys beyond experiments/masked.py: diffusion.process = "masked_panel" with panel_size (R reference
rows a person reads: haplotypes, or dosage rows) and panel_from ("neighbours": the rows nearest
the person's own, a generated person's an anchor's of their class; "class": random rows of the
person's class in the training split; "any": everyone in it); model.kwargs.copy_width (the
copying score's hidden units) and scales (SNPs on each side over which agreement with a panel
row is counted). Everything else is experiments/masked.py's (windows, early stopping, ancestral
sampling), but the sampling grid's spacing is cosine and draws are at temperature 0.9. `:smoke`
is the CI-sized version.
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
    c.diffusion.process = "masked_panel"
    c.diffusion.panel_size = sizes["panel_size"]
    # A person reads the rows nearest their own (a generated person, an anchor's of their class):
    # real people share long stretches with a few others, not with 16 random ones. On LCT
    # (benchmarks/panel_sampling_probe.py, runs/lct_panel2's model trained on class panels, 400
    # people, 32 cosine steps) class -> neighbours at sampling took LD r 0.752 -> 0.806.
    c.diffusion.panel_from = "neighbours"
    # Cosine spacing reveals few tokens in the first steps, so a person's first alleles settle which
    # rows they copy before the rest are drawn. On LCT (runs/lct_panel2, 400 people, 32 steps)
    # uniform -> cosine took LD r 0.659 -> 0.752 and the two-sample AUC 0.759 -> 0.690.
    c.sampling.options.spacing = "cosine"
    # Draws at temperature 0.9: fewer stray mutations off the copied rows. Same probe, neighbours
    # panels: LD r 0.806 -> 0.831, two-sample AUC 0.674 -> 0.604, NNAA against held-out people
    # 0.916 / 0.259 -> 0.797 / 0.418 (real 0.5 / 0.5), rare ALT alleles a person 13.3 -> 8.7
    # (real held-out 10.8), membership AUC 0.520 -> 0.513.
    c.sampling.options.temperature = 0.9
    return c
