"""What the sampler's batch size buys on this machine: `genodiff sample` of one trained run, the
same people each time (the cohort does not depend on the batch), once per `--batch-size`, each in
its own process: wall time (loading, compiling and writing the VCF included) and the process's
peak resident memory. On a CPU a bigger batch is no faster and holds more memory, so
`sampling.cohort.HOST_BATCH_PER_DEVICE` caps the automatic batch there (docs/benchmarks.md).
Prints one JSON line per batch size:

    python benchmarks/sampling_batch.py --workdir runs/lct29/panel --n 1024 --steps 4 \\
        --batches 16,256,1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def run_once(args: argparse.Namespace, batch: int) -> dict:
    """One `genodiff sample` at `batch`: seconds and peak resident memory (GB) of its process."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "genodiff_jax.cli", "sample", "--workdir", args.workdir,
                   "--n", str(args.n), "--steps", str(args.steps), "--labels", "train",
                   "--batch-size", str(batch), "--out", os.path.join(out, "cohort"), "--quiet"]
        log = os.path.join(out, "stderr.txt")
        with open(log, "w") as stderr:  # a file, not a pipe: nothing reads a pipe until the end
            t0 = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            with open(log) as f:
                sys.exit(f"genodiff sample --batch-size {batch} failed:\n{f.read()[-2000:]}")
    return {"batch_size": batch, "n": args.n, "steps": args.steps, "seconds": round(seconds, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}  # ru_maxrss: KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a `genodiff train` work dir")
    parser.add_argument("--n", type=int, default=1024, help="people generated each time")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps")
    parser.add_argument("--batches", default="16,256,1024", help="comma-separated batch sizes")
    args = parser.parse_args()
    for batch in (int(b) for b in args.batches.split(",")):
        print(json.dumps(run_once(args, batch)), flush=True)


if __name__ == "__main__":
    main()
