"""Sampler throughput: `genodiff bench --what sample` with this script's defaults (kept so the
commands in docs/benchmarks.md still run; the logic is in genodiff_jax/bench/).

    python benchmarks/bench_sampling.py [--config experiments/demo.py] [--genes 128] [--n 256]
        [--steps 25] [--repeats 3] [--guidance 0.1] [--samplers ancestral,ddim,dpmpp] [--json FILE]

The config's denoiser, randomly initialised, at shape [genes, 8]; each sampler generates the whole
cohort of --n people per run (one compiled `lax.scan` over the time grid), compile + first run
apart, then the median of --repeats runs. Prints the JSON of `genodiff bench`.
"""

from __future__ import annotations

import argparse
import sys

from genodiff_jax import cli


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    bench_argv = ["bench", "--config", args.config, "--genes", str(args.genes),
                  "--classes", str(args.classes), "--what", "sample", "--sampler", args.samplers,
                  "--n", str(args.n), "--steps", str(args.steps), "--repeats", str(args.repeats),
                  "--guidance", str(args.guidance)]
    if args.json:
        bench_argv += ["--json", args.json]
    return cli.main(bench_argv)


if __name__ == "__main__":
    sys.exit(main())
