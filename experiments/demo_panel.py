"""The panel family on the embedded demo cohort: experiments/demo_masked.py's model, windows and
budget with the copying head over 16 reference haplotypes (experiments/panel.py).

    genodiff train --data runs/demo/data --workdir runs/demo/train_panel \\
        --config experiments/demo_panel.py
    genodiff sample --workdir runs/demo/train_panel --n 300 --labels train \\
        --out runs/demo/synthetic_panel
"""

from __future__ import annotations

import ml_collections

from experiments import demo_masked, panel


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    return panel.with_panel(demo_masked.get_config(arg), smoke=arg == "smoke")
