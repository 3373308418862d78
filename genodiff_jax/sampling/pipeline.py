"""`genodiff sample`: a trained work dir -> a synthetic cohort written as genotypes (DESIGN 4)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax

from genodiff_jax.data.loader import load_prepared
from genodiff_jax.diffusion import get_schedule
from genodiff_jax.sampling.calling import write_synthetic
from genodiff_jax.sampling.cohort import generate
from genodiff_jax.sampling.labels import labels_from_spec
from genodiff_jax.sharding import is_main_process, make_mesh


def sample_cohort(workdir: str | os.PathLike, out: str | os.PathLike, n: int | None, *,
                  sampler: str = "ancestral", steps: int | None = None, guidance: float = 0.1,
                  labels: str = "uniform", calling: str = "round", plink: bool = False,
                  seed: int = 0, batch_size: int | None = None, eta: float = 0.0,
                  data_dir: str | os.PathLike | None = None, checkpoint: str = "best",
                  ema: bool = True, progress: bool = True) -> dict:
    """Sample `n` people (labels by `labels` spec) from a run's EMA parameters and write them out."""
    from genodiff_jax.train.loop import load_trained

    trained = load_trained(workdir, which=checkpoint, ema=ema)
    data = load_prepared(data_dir or trained.run["data_dir"])
    cfg = trained.config.diffusion
    schedule = get_schedule(cfg.schedule, cfg.num_steps)
    labels_n = labels_from_spec(labels, n, class_names=data.class_names, seed=seed,
                                train_labels=data.train.labels)
    t0 = time.perf_counter()
    features = generate(trained.model.apply, trained.params, schedule=schedule,
                        prediction=cfg.prediction, sampler=sampler, steps=steps, labels_N=labels_n,
                        mask_GxK=data.mask, guidance=guidance, key=jax.random.key(seed),
                        batch_size=batch_size, mesh=make_mesh(), T_train=cfg.num_steps,
                        num_classes=data.num_classes,
                        sampler_options={"eta": eta} if sampler == "ddim" else None,
                        progress=progress)
    seconds = time.perf_counter() - t0
    summary = {"n": int(len(labels_n)), "sampler": sampler, "steps": steps or cfg.num_steps,
               "guidance": guidance, "checkpoint": checkpoint, "ema": ema,
               "train_step": int(trained.step), "sampling_seconds": round(seconds, 2)}
    if is_main_process():
        summary.update(write_synthetic(Path(out), features, labels_n, codec=data.codec,
                                       variants=data.variants, class_names=data.class_names,
                                       label_column=data.summary["label"], calling=calling,
                                       plink=plink))
    return summary
