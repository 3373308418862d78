"""The panel family on the 1000 Genomes LCT region: experiments/lct_masked.py's model, window
(one of 7680 SNPs) and step budget, training capped at 27 minutes, with the copying head over the
16 reference haplotypes nearest the person's by shared rare alleles (a generated person's,
anchors' of their population; experiments/panel.py).
`bash experiments/lct_panel.sh` runs it and writes one report beside the masked and gene-PCA
models. `:smoke` is the CI-sized version.
"""

from __future__ import annotations

import ml_collections

from experiments import lct_masked, panel


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = panel.with_panel(lct_masked.get_config(arg), smoke=arg == "smoke")
    if arg is None:
        # train + sample + report within the hour on 2 cores: with rare-sharing panels the run
        # still gained 2.5e-5 val_bits a 250 steps at 35 minutes (runs/lct_rare: stopped by the
        # cap at step 2850, 2128 s, val_bits 0.003579; 0.003622 at step 2250, 28 minutes), but
        # sampling 2504 people takes ~1200 s and the report ~500-650 s (one cohort / three).
        # At 27 minutes (runs/lct27.log): train 1639 s (step 1850, val_bits 0.003740), sample
        # 1373 s, report 609 s, 3631 s in all on an evening this machine ran ~15 % slow (the
        # day before's stage times: ~3350 s); NNAA 0.600 / 0.459 (real 0.496 / 0.526; the
        # 35-minute model 0.585 / 0.471), so the cap is not cut further. On a fast night
        # (runs/lct29.log): step 2250, 3281 s in all, NNAA 0.583 / 0.475. An lr schedule that
        # ends by the cap (num_steps 2000) trained worse (README "The hour, again").
        c.train.max_minutes = 27.0
        # 3 evaluations (750 steps) without a gain of min_delta, not lct_masked.py's 5: its last
        # run peaked at step 1250 and spent steps 1500-2500 (~13 minutes) confirming it.
        c.train.early_stopping.patience = 3
    return c
