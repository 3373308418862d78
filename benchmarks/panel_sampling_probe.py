"""Sampling settings of a trained panel run, compared on one cohort: for each
`R:spacing:steps[:option=value,...]`, N people at the training split's class frequencies are
generated with R panel rows, that grid spacing, that many ancestral steps and those sampler
options (e.g. `temperature=0.9`, `min_p=0.01`; `panel_from=neighbours` overrides the run's
`diffusion.panel_from`, `sampler=confidence` its sampler), and scored against the real held-out
people with the sweep's panel (LD r, two-sample AUC, AF r), the longest run identical to a
training haplotype (median / p99), how many alleles each haplotype differs from the nearest
training one by, the ALT alleles a person carries at SNPs of training frequency below 1 %, the
distance-based membership AUC (training against held-out people, Hamming on dosages) and NNAA
against the held-out people (equal sizes).
Prints one JSON line per setting, real held-out people first:

    python benchmarks/panel_sampling_probe.py runs/lct_panel2/panel 400 \\
        16:uniform:32 64:uniform:32 16:cosine:32 16:cosine:32:min_p=0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from genodiff_jax.data.loader import load_prepared
from genodiff_jax.eval.distances import nearest_neighbors
from genodiff_jax.eval.nnaa import nnaa
from genodiff_jax.eval.privacy import membership_inference
from genodiff_jax.eval.segments import person_longest_runs, run_summary
from genodiff_jax.families import family_of
from genodiff_jax.sampling.impute import imputation_settings
from genodiff_jax.sampling.labels import labels_from_spec
from genodiff_jax.sampling.settings import SamplingSettings
from genodiff_jax.sweep.panel import Cohort, RealPanel, score
from genodiff_jax.train.trained import load_trained

MEASURES = ("ld_r", "two_sample_auc", "af_r")


def nearest_differences(tokens: np.ndarray, train: np.ndarray) -> dict:
    """How many alleles each haplotype of `tokens` [n, 2, S] differs from the training haplotype
    nearest it by (median, mean, p90): a copy with switches or mutations sits further out."""
    d, _ = nearest_neighbors(tokens.reshape(-1, tokens.shape[-1]),
                             train.reshape(-1, train.shape[-1]), metric="hamming")
    return {"median": float(np.median(d)), "mean": float(d.mean()),
            "p90": float(np.percentile(d, 90))}


def describe(tokens: np.ndarray, train: np.ndarray, rare: np.ndarray) -> dict:
    """Rare ALT alleles a person, the longest-identical-run summary and the differences from the
    nearest training haplotype of haplotypes [n, 2, S]."""
    return {"rare_alt": float(tokens[:, :, rare].sum(axis=(1, 2)).mean()),
            "runs": run_summary(person_longest_runs(tokens, train)),
            "nearest_differences": nearest_differences(tokens, train)}


def privacy(tokens: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """Membership AUC and NNAA against the held-out people, on dosages."""
    dosages = [np.asarray(a).sum(axis=1).astype(np.int8) for a in (tokens, train, test)]
    syn, real_train, real_test = dosages
    membership = membership_inference(real_train, real_test, syn, max_n=len(real_test))
    held_out = nnaa(real_train, real_test, syn)["test"]
    return {"membership_auc": membership["auc"], "nnaa_truth": held_out["aa_truth"],
            "nnaa_syn": held_out["aa_syn"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", help="a trained panel run")
    parser.add_argument("n", type=int, help="people generated per setting")
    parser.add_argument("settings", nargs="+", metavar="R:spacing:steps[:option=value,...]")
    args = parser.parse_args()

    trained = load_trained(args.workdir)
    data = load_prepared(trained.run["data_dir"])
    family = family_of(trained.process)
    train, test = np.asarray(data.tokens("train")), np.asarray(data.tokens("test"))
    rare = train.mean(axis=(0, 1)) < 0.01
    real = RealPanel(Cohort(test.sum(axis=1), np.asarray(data.test.labels)), None,
                     np.asarray(data.variants.chrom))
    print(json.dumps({"real_test": describe(test, train, rare)}), flush=True)
    labels = labels_from_spec("train", args.n, class_names=data.class_names, seed=0,
                              train_labels=data.train.labels)
    for spec in args.settings:
        size, spacing, steps, *extra = spec.split(":")
        options = dict(item.split("=") for item in ",".join(extra).split(",") if item)
        process = dataclasses.replace(trained.process, panel_from=options.pop(
            "panel_from", trained.process.panel_from))
        run = dataclasses.replace(trained, process=process)
        settings = imputation_settings(run, SamplingSettings(
            sampler=options.pop("sampler", None), steps=int(steps), panel_size=int(size),
            options={"spacing": spacing, **{k: float(v) for k, v in options.items()}}))
        t0 = time.perf_counter()
        tokens = np.asarray(family.generate(run, data, labels, settings))
        seconds = time.perf_counter() - t0
        result = {**score(Cohort(tokens.sum(axis=1), labels), real, MEASURES),
                  **describe(tokens, train, rare), **privacy(tokens, train, test),
                  "seconds": round(seconds, 1)}
        print(json.dumps({spec: result}), flush=True)


if __name__ == "__main__":
    main()
