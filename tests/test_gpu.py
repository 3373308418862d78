"""Checks only an accelerator can make. CPU runs (CI) skip them; on a GPU machine run
`JAX_PLATFORMS=cuda .venv/bin/python -m pytest -m gpu` (conftest.py defaults JAX to the CPU)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax import cli
from genodiff_jax.models.embeddings import multi_head_attention

pytestmark = pytest.mark.gpu


def test_batch_max_reads_the_device_memory_and_its_batch_trains(capsys):
    """--batch max with the device's own limit: the batch it finds must train without running out
    of memory, and the process's peak must stay under the device's limit."""
    assert cli.main(["bench", "--model", "mlp_unet", "--genes", "26624", "--batch", "max",
                     "--what", "train", "--repeats", "1", "--warmup", "0", "--quiet"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["results"]
    search = entry["batch_search"]
    assert search["free_from"] == "device memory_stats"
    assert entry["batch"] >= 32 and any(not p["fits"] for p in search["probes"])
    assert entry["train"]["loss_finite"]
    limit = jax.local_devices()[0].memory_stats()["bytes_limit"]
    assert entry["train"]["peak_device_memory_bytes"] <= limit


def test_cudnn_attention_matches_xla():
    """The fused cuDNN kernel computes the same attention as XLA's reference path (bf16)."""
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((2, 256, 256)), jnp.bfloat16) for _ in range(3))
    fused = multi_head_attention(q, k, v, 4, "cudnn").astype(jnp.float32)
    reference = multi_head_attention(q, k, v, 4, "xla").astype(jnp.float32)
    np.testing.assert_allclose(fused, reference, atol=3e-2, rtol=3e-2)
