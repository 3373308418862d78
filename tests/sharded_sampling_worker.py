"""Run by tests/test_cohort.py in its own process: 8 fake CPU devices must exist before JAX starts.

Samples one cohort of a tiny MLP U-Net on a mesh of 8 devices and on a mesh of 1, with guidance
and a padded last batch, and prints the largest differences (and the shardings seen) as JSON.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from genodiff_jax.diffusion import GaussianProcess  # noqa: E402
from genodiff_jax.models import build_model  # noqa: E402
from genodiff_jax.sampling import Denoiser, SamplingSettings, generate  # noqa: E402
from genodiff_jax.sharding import make_mesh  # noqa: E402


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    G, K, num_classes = 8, 2, 3
    model = build_model("mlp_unet", num_classes=num_classes, widths=(32, 16), bottleneck=16,
                        num_groups=4)
    x = jnp.zeros((1, G, K))
    params = model.init(jax.random.key(0), x, jnp.zeros(1), jnp.zeros(1, jnp.int32))["params"]
    # Random weights everywhere (init leaves some at 0 or 1), so every path matters.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    params = jax.tree.unflatten(treedef, [0.1 * jax.random.normal(k, p.shape)
                                          for k, p in zip(keys, leaves)])
    mask = np.ones((G, K), bool)
    mask[-2:, 1] = False
    labels = np.arange(21, dtype=np.int32) % num_classes
    process = GaussianProcess("cosine", 100, "eps")
    result = {}
    for sampler in ("ancestral",):  # stochastic: noise, guidance and the model all take part
        denoiser = Denoiser(model.apply, params, num_classes)

        def run(batch_size, devices, sampler=sampler, denoiser=denoiser):
            settings = SamplingSettings(sampler, 10, 0.5, seed=7, batch_size=batch_size,
                                        mesh=make_mesh(devices))
            return generate(denoiser, process=process, settings=settings, labels_N=labels,
                            shape=(G, K), mask=mask)

        sharded, single, other_batch = run(16, 8), run(16, 1), run(8, 8)
        result[sampler] = {
            "max_diff_single": float(np.abs(sharded - single).max()),
            "max_diff_batch": float(np.abs(sharded - other_batch).max()),
            "std": float(sharded[:, mask].std()),
            "padded_zero": bool(np.all(sharded[:, ~mask] == 0)),
            "finite": bool(np.isfinite(sharded).all()),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
