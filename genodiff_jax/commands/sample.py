"""`genodiff sample`: a trained work dir -> a synthetic cohort written as genotypes (DESIGN 4).

The run's family (`families.family_of`) generates (gene-PCA features decoded through the codec and
called; genotype tokens window by window, as they are) and `output.write_cohort` writes."""

from __future__ import annotations

import dataclasses
import os
import time

from genodiff_jax.atomic import check_output
from genodiff_jax.data.loader import load_prepared
from genodiff_jax.errors import InputError
from genodiff_jax.sampling.calling import DEFAULT_CALLING
from genodiff_jax.sampling.cohort import NonFiniteSampleError
from genodiff_jax.sampling.impute import check_panel_request
from genodiff_jax.sampling.labels import labels_from_spec
from genodiff_jax.sampling.output import SYNTHETIC_KIND, CohortTable, write_cohort
from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings, resolve_sampling
from genodiff_jax.sharding import is_main_process, make_mesh


def sample_cohort(workdir: str | os.PathLike, output: OutputSettings, n: int | None,
                  sampling: SamplingSettings = SamplingSettings(), *, labels: str = "uniform",
                  calling: str | None = None, data_dir: str | os.PathLike | None = None,
                  checkpoint: str = "best", ema: bool = True, progress: bool = True) -> dict:
    """Sample `n` people (labels by `labels` spec) from a run's EMA parameters and write them to
    `output.path`.

    `sampling` fields left None are the run config's `sampling` section (`resolve_sampling`).
    For the Gaussian process the default option `clip_x0="data"` clips every x0 prediction to
    the training features' range: without it, few-step deterministic samplers (DDIM,
    DPM-Solver++) diverge, since the grid starts where the cosine schedule has alpha ~ 1e-4 and
    x0_hat = (x_t - sigma eps_hat) / alpha multiplies the network's eps error by ~1e4 (measured
    on the demo: feature std 14 instead of 1). `sampling.weights_dtype` ("auto", float32 or
    bfloat16; None: auto) is the dtype of the weight matrices sampled with
    (`models.inference_weights`): auto takes bfloat16 on CPUs that multiply it in hardware
    (`models.weights_dtype`). The output is checked before any work (`atomic.check_output`): it
    may be new, empty or an earlier cohort (any folder or file with `overwrite`), never the work
    dir or the dataset. A `data_dir` must be the dataset the run was trained on (its
    fingerprint). `sampling.reference` and `panel_size`: the VCF a panel-reading model copies
    from and how many of its rows each person reads (`families.panel`).
    """
    from genodiff_jax.families import family_of
    from genodiff_jax.models import weights_dtype as resolve_weights_dtype
    from genodiff_jax.train.config import sampling_defaults
    from genodiff_jax.train.trained import load_trained, read_run

    if n is not None and n < 1:
        raise InputError(None, f"--n must be >= 1, got {n}")
    data_dir = data_dir or read_run(workdir)[1]["data_dir"]
    output = dataclasses.replace(output, inputs=(workdir, data_dir, sampling.reference))
    check_output(output.path, SYNTHETIC_KIND, inputs=output.inputs, overwrite=output.overwrite)
    trained = load_trained(workdir, which=checkpoint, ema=ema)
    data = load_prepared(data_dir)
    recorded = trained.run.get("dataset_fingerprint")
    if recorded and data.fingerprint and recorded != data.fingerprint:
        raise InputError(data_dir, f"is not the dataset this run was trained on (fingerprint "
                         f"{data.fingerprint}, the run's {recorded})")
    family = family_of(trained.process)
    check_panel_request(family, sampling)
    if calling is not None and not family.takes_calling:
        raise InputError(None, f"--calling: this run samples {trained.process.representation}, "
                               "written as the genotypes they are; --calling is for gene-PCA "
                               "runs (features)")
    chosen = resolve_sampling(trained.process, sampling_defaults(trained.config), sampling,
                              data.train.features)
    chosen = dataclasses.replace(chosen, mesh=chosen.mesh or make_mesh(),
                                 weights_dtype=resolve_weights_dtype(chosen.weights_dtype))
    labels_n = labels_from_spec(labels, n, class_names=data.class_names, seed=chosen.seed,
                                train_labels=data.train.labels)
    t0 = time.perf_counter()
    trained = trained.with_weights(chosen.weights_dtype)
    try:
        samples = family.generate(trained, data, labels_n, chosen, progress=progress)
    except NonFiniteSampleError as e:
        raise InputError(workdir, f"{e}; nothing was written") from e
    seconds = time.perf_counter() - t0
    summary = {"n": int(len(labels_n)), "sampler": chosen.sampler,
               "steps": chosen.steps or trained.process.num_steps,
               "guidance": chosen.guidance, "sampler_options": chosen.options,
               "checkpoint": checkpoint, "ema": ema, "weights_dtype": chosen.weights_dtype,
               "train_step": int(trained.step), "sampling_seconds": round(seconds, 2)}
    if sampling.reference is not None:
        summary["reference"] = str(sampling.reference)
    if not is_main_process():
        return summary
    cohort = family.genotypes(samples, data, calling)
    summary.update(write_cohort(output, CohortTable.of(data), labels_n, cohort.genotypes,
                                cohort.features))
    if family.takes_calling:
        summary["calling"] = calling or DEFAULT_CALLING
    return summary
