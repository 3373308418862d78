"""Run by tests/test_multihost.py: the train steps of tests/sharded_worker.py on a mesh of every
global device, in one process or as one of several `jax.distributed` processes on this machine.

    python tests/multihost_worker.py --devices 4
    python tests/multihost_worker.py --devices 4 --coordinator 127.0.0.1:PORT --num-processes 2 \
        --process-id I

The caller sets XLA_FLAGS=--xla_force_host_platform_device_count=<local devices> in the environment
(it must be set before JAX is imported). Prints one JSON line: losses, grad norms, evaluation, and
checksums of the final parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from genodiff_jax.sharding import maybe_initialize_distributed  # noqa: E402


def checksums(leaves: list[np.ndarray]) -> dict:
    """Per-leaf float64 sums (to compare with a tolerance) and a hash of the bytes (exact)."""
    digest = hashlib.sha256()
    for leaf in leaves:
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return {"sums": [float(np.sum(leaf, dtype=np.float64)) for leaf in leaves],
            "sha256": digest.hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, required=True, help="global devices in the mesh")
    parser.add_argument("--coordinator", default=None, help="host:port of jax.distributed")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    args = parser.parse_args()

    # Cross-process collectives on CPU go through gloo (TCP); it is the default on jax 0.10 but was
    # off on older versions, so say it. Must be set before the CPU backend starts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    maybe_initialize_distributed(args.coordinator, args.num_processes, args.process_id)

    from sharded_worker import run  # after the backend is configured: it imports the train code

    if jax.device_count() != args.devices:
        raise SystemExit(f"expected {args.devices} global devices, see {jax.device_count()}")
    result = run(args.devices)
    print(json.dumps({
        "process_index": jax.process_index(), "process_count": jax.process_count(),
        "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
        "losses": result["losses"], "grad_norms": result["grad_norms"], "val": result["val"],
        "params": checksums(result["params"]), "ema": checksums(result["ema"]),
        "samples": checksums([result["samples"]]),
        "data_shard_rows": result["placement"]["data_shard_rows"],
    }), flush=True)
    if args.coordinator:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
