"""The panel family on the embedded demo cohort: experiments/demo_masked.py's model, windows and
budget with the copying head over 16 reference haplotypes (experiments/panel.py), at most 200
training steps.

    genodiff train --data runs/demo/data --workdir runs/demo/train_panel \\
        --config experiments/demo_panel.py
    genodiff sample --workdir runs/demo/train_panel --n 300 --labels train \\
        --out runs/demo/synthetic_panel
"""

from __future__ import annotations

import ml_collections

from experiments import demo_masked, panel


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = panel.with_panel(demo_masked.get_config(arg), smoke=arg == "smoke")
    if arg is None:
        # 200 steps, not demo_masked.py's 304: on the demo (runs/demo6) val_bits read 0.0479 at
        # step 200 and 0.0474 at 304, 42 s later, and `make demo` is to stay near 10 minutes. A
        # 200-step run (its learning rate decays over 200 steps) ends at 0.049 (runs/demo7).
        c.train.num_steps = 200
    return c
