"""Sharding: the mesh helpers in this process,
and 8 fake CPU devices == 1 device in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from genodiff_jax.sharding import (
    DATA_AXIS,
    batch_sharding,
    make_mesh,
    maybe_initialize_distributed,
    put_global,
    replicated,
)

WORKER = Path(__file__).with_name("sharded_worker.py")


def test_mesh_and_shardings_on_the_visible_devices():
    mesh = make_mesh()
    assert mesh.axis_names == (DATA_AXIS,) and mesh.size == jax.device_count()
    assert batch_sharding(mesh).spec == jax.sharding.PartitionSpec(DATA_AXIS)
    assert replicated(mesh).is_fully_replicated
    x = np.arange(12.0).reshape(4, 3)
    assert np.array_equal(np.asarray(put_global(x, batch_sharding(mesh))), x)
    with pytest.raises(ValueError, match="devices"):
        make_mesh(jax.device_count() + 1)
    assert maybe_initialize_distributed(None) is False  # nothing configured: a no-op


@pytest.fixture(scope="module")
def sharded_result() -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(WORKER)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eight_devices_place_data_by_rows_and_state_replicated(sharded_result: dict):
    assert sharded_result["device_count"] == 8
    p8, p1 = sharded_result["placement_8"], sharded_result["placement_1"]
    assert p8["params_replicated"] and p8["state_replicated_after"]
    # 20 rows padded to 24, 3 a device; one device holds them all
    assert (p8["data_devices"], p8["data_shard_rows"]) == (8, 3)
    assert (p1["data_devices"], p1["data_shard_rows"]) == (1, 20)


def test_eight_devices_train_like_one(sharded_result: dict):
    """3 steps on 8 devices match 1 device to 1e-5: same batches, noise, dropout, updates."""
    r = sharded_result
    np.testing.assert_allclose(r["losses_8"], r["losses_1"], rtol=1e-5)
    np.testing.assert_allclose(r["grad_norms_8"], r["grad_norms_1"], rtol=1e-5)
    assert r["params_rel_diff"] < 1e-5 and r["ema_rel_diff"] < 1e-5
    assert r["samples_rel_diff"] < 1e-4 and r["samples_std"] > 0.1  # sampling from trained params
    for k in ("val_loss", "val_recon"):
        assert r["val_8"][k] == pytest.approx(r["val_1"][k], rel=1e-5)
    # the three steps did train: different batches give different losses
    assert len(set(r["losses_1"])) == 3
