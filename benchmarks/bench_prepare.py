"""Benchmark `genodiff prepare` on a simulated cohort (default: the `bench` preset, 3 x 1000 people,
>= 200,000 SNPs): wall time and peak memory of the prepare process, against N x S bytes.

    python benchmarks/bench_prepare.py [--preset bench] [--out runs/bench_prepare] [--json FILE]

The cohort is simulated first (cached by parameters, not timed). `prepare` runs in a child process
so its peak resident memory (ru_maxrss of the child) is its own. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bench")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_prepare"))
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()

    from genodiff_jax.data.simulate import PRESETS, simulate_cohort

    t0 = time.perf_counter()
    files = simulate_cohort(args.out / "cohort", PRESETS[args.preset], progress=True)
    simulate_s = time.perf_counter() - t0

    cmd = [sys.executable, "-m", "genodiff_jax.cli", "prepare", "--quiet", "--vcf", str(files.vcf),
           "--panel", str(files.panel), "--genes", str(files.bed), "--out", str(args.out / "data")]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall_s = time.perf_counter() - t0
    peak_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB

    summary = json.loads((args.out / "data" / "summary.json").read_text())
    n, s = summary["n_samples"], summary["n_records"]
    import jax
    import numpy as np

    result = {
        "preset": args.preset,
        "n_samples": n,
        "n_records": s,
        "n_variants_used": summary["n_variants_used"],
        "n_genes": summary["n_genes"],
        "prepare_wall_s": round(wall_s, 1),
        "prepare_peak_rss_bytes": peak_bytes,
        "n_x_s_bytes": n * s,
        "peak_over_n_x_s": round(peak_bytes / (n * s), 2),
        "simulate_or_cache_s": round(simulate_s, 1),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "jax": jax.__version__},
        "command": " ".join(["python", "benchmarks/bench_prepare.py", "--preset", args.preset]),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
