"""Multi-host data parallelism on one machine: two `jax.distributed` processes with 2 fake CPU
devices each train like one process with 4 devices.

The processes meet at a coordinator on 127.0.0.1 and all-reduce gradients over gloo (TCP), JAX's
CPU cross-process collectives. Each runs tests/multihost_worker.py (the train steps and evaluation
of tests/sharded_worker.py) in its own interpreter, since the device count is fixed at JAX start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # ~25-45 s on 2 cores: three JAX processes compile at once

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("multihost_worker.py")
TIMEOUT_S = 300  # all three, cores shared with the suite; a hung collective must not stall CI
# What the CPU backend says when it has no cross-process collectives (checked on jax 0.10.2 with
# jax_cpu_collectives_implementation=None, the default of older versions).
NO_CPU_COLLECTIVES = ("Multiprocess computations aren't implemented on the CPU backend",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(log: Path, local_devices: int, *args: str) -> subprocess.Popen:
    """One worker; its output goes to files (a full pipe could block it mid-collective)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={local_devices}"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, str(WORKER), "--devices", "4", *args], cwd=ROOT,
                                env=env, stdout=out, stderr=err, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """{"single": result, "hosts": [process 0's, process 1's]}; all three run at once."""
    logs = tmp_path_factory.mktemp("multihost")
    address = f"127.0.0.1:{_free_port()}"
    procs = [_start(logs / f"host{i}", 2, "--coordinator", address, "--num-processes", "2",
                    "--process-id", str(i)) for i in range(2)]
    procs.append(_start(logs / "single", 4))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for p in procs:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a worker ran past {TIMEOUT_S} s (a hung collective?); logs in {logs}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for p, name in zip(procs, ["host0", "host1", "single"]):
        err = (logs / f"{name}.err").read_text()
        if p.returncode and any(m in err for m in NO_CPU_COLLECTIVES):
            pytest.skip(f"this JAX cannot run CPU collectives across processes: {err[-300:]}")
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads((logs / f"{name}.out").read_text().strip().splitlines()[-1]))
    return {"hosts": results[:2], "single": results[2]}


def test_two_processes_see_one_global_mesh(runs: dict):
    for i, r in enumerate(runs["hosts"]):
        assert (r["process_index"], r["process_count"]) == (i, 2)
        assert (r["device_count"], r["local_device_count"]) == (4, 2)
        assert r["data_shard_rows"] == 5  # 20 rows over 4 devices, 2 of them in each process
    assert (runs["single"]["process_count"], runs["single"]["local_device_count"]) == (1, 4)


def test_both_processes_hold_the_same_state(runs: dict):
    """Replicated state stays bitwise identical on both hosts: each gets the same all-reduce."""
    a, b = runs["hosts"]
    for key in ("losses", "grad_norms", "val"):
        assert a[key] == b[key], key
    assert a["params"]["sha256"] == b["params"]["sha256"]
    assert a["ema"]["sha256"] == b["ema"]["sha256"]
    assert a["samples"]["sha256"] == b["samples"]["sha256"]  # both gather the same cohort


def test_two_processes_train_like_one_with_four_devices(runs: dict):
    """Same batches, noise and updates; only the order of the cross-process sums may differ."""
    host, single = runs["hosts"][0], runs["single"]
    np.testing.assert_allclose(host["losses"], single["losses"], rtol=1e-5)
    np.testing.assert_allclose(host["grad_norms"], single["grad_norms"], rtol=1e-5)
    for k in ("val_loss", "val_recon"):
        assert host["val"][k] == pytest.approx(single["val"][k], rel=1e-5)
    for tree in ("params", "ema", "samples"):
        np.testing.assert_allclose(host[tree]["sums"], single[tree]["sums"], rtol=1e-4, atol=1e-4)
    assert len(set(single["losses"])) == 3  # the steps did train
