"""`genodiff sample`: a trained work dir -> a synthetic cohort written as genotypes (DESIGN 4).

Gene-PCA runs sample features and decode them through the codec (`calling`); masked-diffusion runs
sample genotype tokens window by window (`sampling.tokens`) and write them as they are."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax

from genodiff_jax.atomic import check_output
from genodiff_jax.data.loader import load_prepared
from genodiff_jax.data.views import token_plan
from genodiff_jax.diffusion.process import sampler_option_names
from genodiff_jax.errors import InputError
from genodiff_jax.sampling.calling import DEFAULT_CALLING, SYNTHETIC_KIND, write_synthetic
from genodiff_jax.sampling.cohort import NonFiniteSampleError, generate
from genodiff_jax.sampling.labels import labels_from_spec
from genodiff_jax.sampling.tokens import generate_tokens, write_token_cohort
from genodiff_jax.sharding import is_main_process, make_mesh

# Classifier-free guidance weights sampled with: w = -1 is the unconditional model, w = 0 the
# conditional one. Below -1 pushes away from the class asked for; far above the weights runs are
# tuned at (0 to a few), (1 + w) eps_cond - w eps_uncond extrapolates the network's error (issue
# 27: w = 1e9 gave 3.6 x the homozygous-ALT calls). `sampling.guidance` has the same range.
# Measured on the demo's gene-PCA model (300 people, dpmpp 50 steps; real training split 0.0464
# homozygous-ALT calls): w = 0, 3, 10 give 0.88, 0.93, 1.02 x that share, w = 30 1.40 x, w = 100
# 2.20 x; above GUIDANCE_WARN a run is told so.
GUIDANCE_RANGE = (-1.0, 100.0)
GUIDANCE_WARN = 10.0


def resolve_sampling(process, defaults: dict, sampler: str | None, steps: int | None,
                     guidance: float | None, options: Mapping[str, Any] | None,
                     train_x=None) -> dict:
    """The sampler, steps, guidance and options to use: the run's `sampling` config, overridden
    by what was asked for. The config's options follow the sampler where it takes them (a
    sampler picked on the command line keeps, e.g., the config's clip_x0 but not another
    sampler's eta); every option asked for must be the sampler's own."""
    name = sampler or defaults["sampler"]
    if name not in process.samplers:
        raise InputError(None, f"unknown sampler {name!r}; known: "
                         f"{', '.join(sorted(process.samplers))}")
    takes = set(sampler_option_names(process.samplers[name]))
    merged = {k: v for k, v in defaults["options"].items() if k in takes}
    merged.update(options or {})
    steps = steps if steps is not None else (defaults["steps"] or None)
    guidance = float(defaults["guidance"] if guidance is None else guidance)
    if not math.isfinite(guidance):
        raise InputError(None, f"--guidance must be a finite number, got {guidance}")
    least, most = GUIDANCE_RANGE
    if not least <= guidance <= most:
        raise InputError(None, f"--guidance must be in [{least:g}, {most:g}] (-1: unconditional, "
                               f"0: conditional, above: guided), got {guidance:g}")
    if guidance > GUIDANCE_WARN:
        print(f"genodiff: warning: guidance {guidance:g} is above {GUIDANCE_WARN:g}, where "
              "genotype counts drift (demo gene-PCA model: 1.40 x the real homozygous-ALT share "
              "at 30, 2.20 x at 100)", file=sys.stderr)
    bad = [k for k, v in merged.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise InputError(None, f"--sampler-options: {bad[0]} must be finite, got {merged[bad[0]]}")
    try:
        process.check_steps(steps)
    except ValueError as e:
        raise InputError(None, f"--steps: {e}") from e
    try:
        merged = process.sampler_options(name, merged, train_x)
    except ValueError as e:
        raise InputError(None, f"--sampler-options: {e}") from e
    return {"sampler": name, "steps": steps, "guidance": guidance, "options": merged}


def sample_cohort(workdir: str | os.PathLike, out: str | os.PathLike, n: int | None, *,
                  sampler: str | None = None, steps: int | None = None,
                  guidance: float | None = None, sampler_options: Mapping[str, Any] | None = None,
                  labels: str = "uniform", calling: str | None = None, plink: bool = False,
                  pgen: bool = False, seed: int = 0, batch_size: int | None = None,
                  data_dir: str | os.PathLike | None = None, checkpoint: str = "best",
                  ema: bool = True, weights_dtype: str | None = None,
                  overwrite: bool = False, progress: bool = True) -> dict:
    """Sample `n` people (labels by `labels` spec) from a run's EMA parameters and write them out.

    `sampler`, `steps`, `guidance` and `sampler_options` default to the run config's `sampling`
    section (see `resolve_sampling`). For the Gaussian process the default option
    `clip_x0="data"` clips every x0 prediction to the training features' range: without it,
    few-step deterministic samplers (DDIM, DPM-Solver++) diverge, since the grid starts where the
    cosine schedule has alpha ~ 1e-4 and x0_hat = (x_t - sigma eps_hat) / alpha multiplies the
    network's eps error by ~1e4 (measured on the demo: feature std 14 instead of 1).
    `weights_dtype` ("auto", float32 or bfloat16; None: auto) is the dtype of the weight matrices
    sampled with (`models.inference_weights`): auto takes bfloat16 on CPUs that multiply it in
    hardware (`models.weights_dtype`). `out` is checked before any work (`atomic.check_output`):
    it may be new, empty or an earlier cohort (any folder or file with `overwrite`), never the
    work dir or the dataset. A `data_dir` must be the dataset the run was trained on (its
    fingerprint).
    """
    from genodiff_jax.models import inference_compiler_options
    from genodiff_jax.models import weights_dtype as resolve_weights_dtype
    from genodiff_jax.train.config import sampling_defaults
    from genodiff_jax.train.trained import load_trained, read_run

    if n is not None and n < 1:
        raise InputError(None, f"--n must be >= 1, got {n}")
    if batch_size is not None and batch_size < 1:
        raise InputError(None, f"--batch-size must be >= 1, got {batch_size}")
    data_dir = data_dir or read_run(workdir)[1]["data_dir"]
    inputs = (workdir, data_dir)
    check_output(out, SYNTHETIC_KIND, inputs=inputs, overwrite=overwrite)
    trained = load_trained(workdir, which=checkpoint, ema=ema)
    data = load_prepared(data_dir)
    recorded = trained.run.get("dataset_fingerprint")
    if recorded and data.fingerprint and recorded != data.fingerprint:
        raise InputError(data_dir, f"is not the dataset this run was trained on (fingerprint "
                         f"{data.fingerprint}, the run's {recorded})")
    process = trained.process
    if process.representation == "tokens" and calling is not None:
        raise InputError(None, "--calling: this run samples genotype tokens (the masked "
                               "family), which are written as they are; --calling is for "
                               "gene-PCA runs")
    calling = calling or DEFAULT_CALLING
    chosen = resolve_sampling(process, sampling_defaults(trained.config), sampler, steps,
                              guidance, sampler_options, data.train.features)
    labels_n = labels_from_spec(labels, n, class_names=data.class_names, seed=seed,
                                train_labels=data.train.labels)
    t0 = time.perf_counter()
    weights_dtype = resolve_weights_dtype(weights_dtype)
    trained = trained.with_weights(weights_dtype)
    common = dict(sampler=chosen["sampler"], steps=chosen["steps"], guidance=chosen["guidance"],
                  key=jax.random.key(seed), batch_size=batch_size, mesh=make_mesh(),
                  compiler_options=inference_compiler_options(trained.model), progress=progress)
    if process.representation == "tokens":
        plan = token_plan(data, process, trained.model)
        samples = generate_tokens(trained, data, labels_n, plan, options=chosen["options"],
                                  **common)
    else:
        try:
            samples = generate(trained.model.apply, trained.params, process=process,
                               labels_N=labels_n, shape=trained.row.shape, mask=data.mask,
                               sampler_options=chosen["options"], num_classes=data.num_classes,
                               **common)
        except NonFiniteSampleError as e:
            raise InputError(workdir, f"{e}; nothing was written") from e
    seconds = time.perf_counter() - t0
    summary = {"n": int(len(labels_n)), "sampler": chosen["sampler"],
               "steps": chosen["steps"] or process.num_steps,
               "guidance": chosen["guidance"], "sampler_options": chosen["options"],
               "checkpoint": checkpoint, "ema": ema, "weights_dtype": weights_dtype,
               "train_step": int(trained.step), "sampling_seconds": round(seconds, 2)}
    if not is_main_process():
        return summary
    written = dict(variants=data.variants, class_names=data.class_names,
                   label_column=data.summary["label"], plink=plink, pgen=pgen,
                   overwrite=overwrite,
                   inputs=inputs, dataset=data.fingerprint)
    if process.representation == "tokens":
        summary.update(write_token_cohort(Path(out), samples, labels_n, **written))
    else:
        summary.update(write_synthetic(Path(out), samples, labels_n, codec=data.codec,
                                       calling=calling, **written))
    return summary
