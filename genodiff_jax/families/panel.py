"""The panel family (issue 26): the masked family whose denoiser (`snp_panel`) also reads a
reference panel, R rows of real people at the same SNPs, and learns when and where to copy from
them. Trained on the `panel` view (leave-one-out panels from the training split); a generated
person's panel is drawn from the training split's people of the class asked for (or everyone's,
`diffusion.panel_from = "any"`; or from the people of a VCF passed with `genodiff sample
--reference`), the same rows for every window of that person; an imputed person's are the
training rows closest to what is observed of them (twice the run's R by default). The rest is
the masked family's (windows, ancestral unmasking, guidance, the cohort as tokens, imputation).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from genodiff_jax.data.panels import best_matching, draw_panels, neighbour_panels, panel_rows
from genodiff_jax.data.views import panel_view
from genodiff_jax.errors import InputError
from genodiff_jax.families.base import Example, register_family
from genodiff_jax.families.masked import MaskedFamily
from genodiff_jax.sampling.impute import reference_tokens
from genodiff_jax.sampling.settings import SamplingSettings

# An imputed person reads this many times the run's R rows (the rows nearest what is observed
# of them; R for each haplotype, where a training person's neighbours give each R / 2). Over ten
# observed grids (benchmarks/impute_lct.py --offsets 0..9, README "Imputation reads twice the
# rows") 2R against R took LCT's dosage r^2 0.978 / 0.993 / 0.809 -> 0.980 / 0.993 / 0.812 and
# the demo's 0.883 / 0.907 / 0.664 -> 0.909 / 0.929 / 0.692 (docs/bench/impute_panel_rows.json);
# 4R: LCT 0.981 / 0.993 / 0.809, the demo 0.922 / 0.940 / 0.710 (LCT's rare bin back down).
IMPUTATION_PANEL_FACTOR = 2


class PanelFamily(MaskedFamily):
    reads_panel = True
    bench_recipe = "experiments/panel.py"  # the config whose recipe `genodiff bench --model` uses
    view = staticmethod(panel_view)

    def inputs(self, trained, data, labels_N: np.ndarray, settings: SamplingSettings,
               known: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """{"panel": int8 [N, R, S]}: R rows (`settings.panel_size`, default the run's
        `diffusion.panel_size`) of the training split, or of the phased VCF
        `settings.reference` (`genodiff sample/impute --reference VCF`). Imputing (`known`
        given), the rows that agree with the most observed tokens (`data.panels.best_matching`),
        `IMPUTATION_PANEL_FACTOR` times as many by default.
        Generating, drawn seeded by `settings.seed` as `diffusion.panel_from` says: random rows
        of the class asked for or of anyone, or the rows nearest anchors', a haplotype of a person
        of that class for each of the person's (`data.panels.neighbour_panels`). From a
        reference, its people carry no class (whoever passes it chose them): any of them, or
        anchors among them."""
        process = trained.process
        factor = 1 if known is None else IMPUTATION_PANEL_FACTOR
        size = int(settings.panel_size or factor * process.panel_size)
        reference = settings.reference
        pool = (data.tokens("train") if reference is None
                else reference_tokens(reference, data))
        rows = panel_rows(pool)
        if known is not None:
            return {"panel": rows[best_matching(rows, known, size, match=process.panel_match)]}
        pool_labels, panel_from = ((data.train.labels, process.panel_from) if reference is None
                                   else (np.zeros(len(pool), np.int32), "any"))
        rng = np.random.default_rng([settings.seed, 26])
        if process.panel_from == "neighbours":
            if len(pool) < 2:
                raise InputError(reference, "a neighbours panel needs 2 or more people in the "
                                 "reference (the anchor's own rows are left out)")
            index = neighbour_panels(pool, labels_N, pool_labels, size, rng,
                                     match=process.panel_match)
        else:
            index = draw_panels(labels_N, pool_labels, rows.shape[0] // len(pool_labels), size,
                                rng, panel_from=panel_from)
        return {"panel": rows[index]}

    def bench_example(self, process, model, shape) -> Example:
        """The masked family's example with a random panel of `process.panel_size` rows."""
        example = super().bench_example(process, model, shape)
        R, (_, L), V = int(process.panel_size), example.fields["token_shape"], process.vocab_size

        def with_panel(rows: dict, rng: np.random.Generator) -> dict:
            panel = rng.integers(0, V, (len(rows["tokens"]), R, L), dtype=np.int8)
            return {**rows, "panel": panel}

        return dataclasses.replace(
            example, row={**example.row, "panel": jax.ShapeDtypeStruct((R, L), np.int8)},
            label=f"{example.label} + panel [{R}, {L}]",
            fields={**example.fields, "panel_rows": R},
            data=lambda rng, rows: with_panel(example.data(rng, rows), rng),
            model_input=lambda rng, rows: with_panel(example.model_input(rng, rows), rng),
            start=lambda n: with_panel(example.start(n), np.random.default_rng(n)))


register_family("panel", PanelFamily())
