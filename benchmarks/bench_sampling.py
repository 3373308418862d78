"""Sampler throughput: samples x steps per second for each sampler, compile time apart, median of N.

    python benchmarks/bench_sampling.py [--config experiments/demo.py] [--genes 128] [--n 256]
        [--steps 25] [--repeats 3] [--guidance 0.1] [--json FILE]

The denoiser comes from the config (randomly initialised: speed does not depend on the weights) at
shape [genes, 8]; every sampler runs the whole cohort of --n people in one `generate` call (one
compiled `lax.scan` over the time grid per sampler). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/demo.py")
    parser.add_argument("--genes", type=int, default=128)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--n", type=int, default=256, help="people per generate call")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--guidance", type=float, default=0.1)
    parser.add_argument("--samplers", default="ancestral,ddim,dpmpp")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from genodiff_jax.diffusion import get_schedule
    from genodiff_jax.models import abstract_params
    from genodiff_jax.sampling.cohort import generate
    from genodiff_jax.sharding import make_mesh
    from genodiff_jax.train.loop import load_config, model_from_config

    config = load_config(args.config)
    model = model_from_config(config, args.classes)
    k = 8
    shapes = abstract_params(model, args.genes, k)
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: (0.02 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)
    schedule = get_schedule(config.diffusion.schedule, config.diffusion.num_steps)
    labels = np.arange(args.n, dtype=np.int32) % args.classes
    mask = np.ones((args.genes, k), bool)
    mesh = make_mesh()

    results = {}
    for sampler in args.samplers.split(","):
        def run(seed: int) -> float:
            t0 = time.perf_counter()
            generate(model.apply, params, schedule=schedule,
                     prediction=config.diffusion.prediction, sampler=sampler, steps=args.steps,
                     labels_N=labels, mask_GxK=mask, guidance=args.guidance,
                     key=jax.random.key(seed), batch_size=args.n, mesh=mesh,
                     T_train=config.diffusion.num_steps, num_classes=args.classes)
            return time.perf_counter() - t0

        first = run(0)  # includes compilation
        times = [run(i + 1) for i in range(args.repeats)]
        median = statistics.median(times)
        results[sampler] = {
            "compile_and_first_run_s": round(first, 3),
            "median_s": round(median, 4),
            "samples_x_steps_per_s": round(args.n * args.steps / median, 1),
            "model_calls_per_step": 2 if args.guidance else 1,
        }
    out = {
        "config": args.config, "model": config.model.name, "shape": [args.genes, k],
        "n": args.n, "steps": args.steps, "guidance": args.guidance, "samplers": results,
        "machine": {"backend": jax.default_backend(), "devices": jax.device_count(),
                    "device_kind": jax.devices()[0].device_kind, "python": platform.python_version(),
                    "jax": jax.__version__},
        "command": "python benchmarks/bench_sampling.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
