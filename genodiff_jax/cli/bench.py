"""`genodiff bench`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genodiff_jax.cli.base import add_weights_dtype_flag, command, parse_options


def _bench_args(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a registered denoiser at the paper's sizes")
    which.add_argument("--models", help="comma-separated denoisers, or 'all'")
    which.add_argument("--config", help="the model and recipe of experiments/NAME.py[:ARG]")
    p.add_argument("--model-kwargs", default=None,
                   help='JSON model fields, e.g. \'{"widths": [64, 32]}\', or one object per '
                   'model name: \'{"mlp_unet": {...}, "cnn_unet": {...}}\'')
    p.add_argument("--genes", type=int, default=None,
                   help="gene axis G of the features [G, K] (features family; default 2048)")
    p.add_argument("--components", type=int, default=None,
                   help="components per gene K (features family; default 8)")
    p.add_argument("--window", type=int, default=None,
                   help="SNPs L of the tokens [H, L] (masked family; default: the config's "
                   "diffusion.window), rounded up to the model's length multiple")
    p.add_argument("--classes", type=int, default=26, help="number of classes")
    p.add_argument("--batch", default=None,
                   help="rows per train step and forward call (default: the config's, else 32); "
                   "max: the largest train batch that fits in device memory")
    p.add_argument("--memory-limit-gb", type=float, default=None,
                   help="memory per device for --batch max (default: the device's free memory; "
                   "CPUs report none)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                   help="compute dtype (default: the config's, else float32; params stay float32)")
    add_weights_dtype_flag(p, "in the forward and sample sections")
    p.add_argument("--what", default=None,
                   help="comma-separated sections: train, forward, sample (default: train,forward; "
                   "none with --project)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps / calls / cohorts")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed calls after the first (train and forward)")
    p.add_argument("--sampler", default="ancestral",
                   help="comma-separated samplers for the sample section")
    p.add_argument("--sampler-options", default=None, metavar="K=V,...",
                   help="options passed to every sampler of the sample section, e.g. eta=0.5 "
                   "(ddim) or clip_x0=1.5 (default: each sampler's own)")
    p.add_argument("--steps", type=int, default=25, help="sampling steps")
    p.add_argument("--n", type=int, default=256, help="people per sampled cohort")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance w (0: one model call a step; default: the "
                   "config's sampling.guidance, 0.1 for --model)")
    p.add_argument("--sample-batch", type=int, default=None,
                   help="sampling batch (default: from free device memory, as `genodiff sample`)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOP/s of one device for MFU (default: known accelerators only)")
    p.add_argument("--num-devices", type=int, default=0, help="devices in the mesh (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="none", metavar="none|torch",
                   help="torch: also time the PyTorch twin of each gene-PCA denoiser and train "
                   "step (benchmarks/torch_reference.py; pip install -r "
                   "benchmarks/requirements-torch.txt) in turns with ours, train and forward "
                   "sections; ratio = torch seconds / ours (default: none)")
    p.add_argument("--project", default=None, metavar="h100,h200",
                   help="also project onto these GPUs, computed without one: FLOPs, bytes and "
                   "memory of the train and sampling steps from the programs compiled here, the "
                   "largest train batch that fits, roofline times (lower bounds) beside the "
                   "project's goals; bfloat16 unless --dtype")
    p.add_argument("--project-people", type=int, default=2504,
                   help="people a projection samples and splits for training (default: the 2504 "
                   "of 1000 Genomes)")
    p.add_argument("--project-snps", type=int, default=1_000_000,
                   help="SNPs of the chromosome a token model's projection covers in windows "
                   "(default 1,000,000, a round assumption)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON result here")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@command("bench", "measure train-step, denoiser-call and sampling throughput (compile apart, "
         "median of N, FLOPs, MFU); JSON with the machine and the command", _bench_args)
def _bench(args: argparse.Namespace) -> None:
    import shlex

    from genodiff_jax.bench import (
        BenchSettings,
        parse_batch,
        parse_model_kwargs,
        resolve_models,
        run_bench,
    )
    from genodiff_jax.bench import write_json as write_bench_json

    specs = resolve_models(args.models or args.model, config=args.config,
                           model_kwargs=parse_model_kwargs(args.model_kwargs))
    settings = BenchSettings(
        genes=args.genes, components=args.components, window=args.window, classes=args.classes,
        batch=parse_batch(args.batch), memory_limit_gb=args.memory_limit_gb, dtype=args.dtype,
        weights_dtype=args.weights_dtype, repeats=args.repeats, warmup=args.warmup,
        what=_split(args.what if args.what is not None else
                    "" if args.project is not None else "train,forward"),
        samplers=_split(args.sampler), sampler_options=parse_options(args.sampler_options),
        steps=args.steps, n=args.n, guidance=args.guidance,
        sample_batch=args.sample_batch, peak_tflops=args.peak_tflops,
        num_devices=args.num_devices, seed=args.seed, reference=args.reference,
        project=_split(args.project or ""), project_people=args.project_people,
        project_snps=args.project_snps)
    log = None if args.quiet else (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    result = run_bench(specs, settings, command=shlex.join(["genodiff", *args.argv]), log=log)
    if args.json is not None:
        write_bench_json(result, args.json)
    print(json.dumps(result, indent=2))
