"""The masked family (DESIGN 6): masked discrete diffusion on genotype tokens, generated window by
window over the region (`sampling.tokens`) and written as they are (phased haplotypes, or
dosages)."""

from __future__ import annotations

import jax
import numpy as np

from genodiff_jax.data.views import WindowPlan, plan_windows, token_plan, token_view
from genodiff_jax.families.base import Example, Genotypes, register_family
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sampling.tokens import generate_tokens, token_rows
from genodiff_jax.train.config import sampling_defaults

BP_PER_SNP = 200  # mean spacing of the benchmark's random SNP positions (the cost ignores it)


class MaskedFamily:
    bench_recipe = "experiments/masked.py"  # the config whose recipe `genodiff bench --model` uses
    view = staticmethod(token_view)
    default_steps = (4, 8, 16, 32, 64, 128, 256)
    takes_calling = False
    reads_panel = False  # whether `inputs` reads a reference panel (`genodiff impute --reference`)
    bench_flags = {"--window": "window"}

    def sampling_plan(self, trained, data) -> WindowPlan:
        return token_plan(data, trained.process, trained.model)

    def generate(self, trained, data, labels_N: np.ndarray, settings: SamplingSettings, *,
                 plan: WindowPlan | None = None, progress: bool = False) -> np.ndarray:
        plan = plan if plan is not None else self.sampling_plan(trained, data)
        return generate_tokens(trained, data, labels_N, plan, settings, progress=progress,
                               per_snp=self.inputs(trained, data, labels_N, settings))

    def inputs(self, trained, data, labels_N: np.ndarray, settings: SamplingSettings,
               known: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """What generating (or, with `known`, imputing) people of class `labels_N` feeds the
        denoiser besides the tokens and the SNP context, {name: [N, ..., S]}: nothing here (a
        family that `reads_panel` reads its panel, `settings.reference` or the training
        split)."""
        return {}

    def genotypes(self, samples: np.ndarray, data, calling: str | None) -> Genotypes:
        tokens = np.asarray(samples, np.int8)
        return Genotypes(tokens if tokens.shape[1] == 2 else tokens[:, 0])


    def bench_example(self, process, model, shape) -> Example:
        """Genotype tokens [H, L] with the pos/af context, every SNP real: L from `window`
        (default: the process's) rounded up to the model's length multiple; sampling starts all
        MASK with the context (the `start` of `generate`)."""
        H = token_rows(process)
        asked = int(process.window) if shape.get("window") is None else shape["window"]
        multiple = model.length_multiple() if hasattr(model, "length_multiple") else 1
        L = -(-asked // multiple) * multiple
        V, mask_id = process.vocab_size, process.mask_id
        context = _random_context(L)

        def rows_of(tokens: np.ndarray) -> dict[str, np.ndarray]:
            n = tokens.shape[0]
            return {"tokens": tokens,
                    **{k: np.repeat(v[None], n, axis=0) for k, v in context.items()}}

        fields = {"token_shape": [H, L], "tokens_per_example": H * L}
        if L != asked:
            fields["window_asked"] = asked  # rounded up to the model's length multiple
        return Example(
            row={"tokens": jax.ShapeDtypeStruct((H, L), np.int8),
                 **{k: jax.ShapeDtypeStruct((L,), np.float32) for k in context}},
            mask=None, label=f"tokens [{H}, {L}]", fields=fields, units={"tokens": H * L},
            data=lambda rng, rows: rows_of(rng.integers(0, V, (rows, H, L), dtype=np.int8)),
            # x_t as the sampler hands it to the denoiser: int32, some tokens MASK
            model_input=lambda rng, rows: rows_of(rng.integers(0, mask_id + 1, (rows, H, L),
                                                               dtype=np.int32)),
            start=lambda n: rows_of(np.full((n, H, L), mask_id, np.int8)))

    def bench_workloads(self, st) -> dict:
        """Rates in one window, and a chromosome of `st.snps` SNPs cut into the config's
        overlapping windows: training over every (person, window), sampling window after
        window."""
        process = st.spec.process
        H, L = st.example.fields["token_shape"]
        steps = int(sampling_defaults(st.spec.config)["steps"]) or int(process.num_steps)
        windows = len(plan_windows(st.snps, L, int(process.overlap), 1).starts)
        training = st.training(rows_per_person=windows)
        return {
            "window": {"tokens_per_example": H * L,
                       "train_tokens_per_s": st.batch * H * L / st.train["seconds"],
                       "sampler_tokens_x_steps_per_s": st.people * H * L / st.sample["seconds"],
                       "sample": st.times(steps, "sample", people=st.people, steps=steps)},
            "chromosome": {"snps": st.snps, "window": L, "overlap": int(process.overlap),
                           "windows": windows,
                           "training": st.times(training["steps"], "train", **training),
                           "sample": st.times(windows * steps, "sample", people=st.people,
                                              steps=steps)},
        }


def _random_context(L: int) -> dict[str, np.ndarray]:
    """Random SNP context [L]: positions from 0 in base pairs, allele frequencies (raw, and the
    smoothed class and pooled ones of `data.views.row_context`)."""
    rng = np.random.default_rng(L)
    pos = np.concatenate([[0], np.cumsum(rng.integers(1, 2 * BP_PER_SNP, L - 1))])
    af = rng.uniform(0.0, 0.5, L).astype(np.float32)
    smoothed = np.clip(af, 1e-3, 1 - 1e-3)
    return {"pos": pos.astype(np.float32), "af": af, "class_af": smoothed, "pooled_af": smoothed}


register_family("tokens", MaskedFamily())
