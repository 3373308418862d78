"""Evaluation sections, found by name in `SECTIONS` (the interface is in `base.py`).

Built in, one module each: `transfer` (recovery rates and augmentation), `nnaa` (nearest-neighbour
adversarial accuracy), `fidelity` (population genetics), `privacy`, `two_sample` (a classifier
two-sample test), `haplotype_privacy` (longest runs identical to a training haplotype),
`per_class` (each generated class against each real class). Every module in this package is
imported here, so a new section is one new file that registers itself plus its name in
`EvalSettings.sections` (or `--sections`). A section registered anywhere else before `evaluate`
runs works as well. The modules import their metric libraries when they run, so
loading them is cheap.
"""

from __future__ import annotations

import importlib
import pkgutil

from genodiff_jax.eval.sections.base import (
    DEFAULT_SECTIONS,
    FLOORS,
    REAL_IDEAL,
    SECTIONS,
    Column,
    EvalContext,
    EvalSettings,
    Generator,
    SaveFigure,
    Section,
    Table,
    split_haplotypes,
)

__all__ = ["DEFAULT_SECTIONS", "FLOORS", "REAL_IDEAL", "SECTIONS", "Column", "EvalContext",
           "EvalSettings", "Generator", "SaveFigure", "Section", "Table", "split_haplotypes"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
