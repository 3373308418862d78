"""Run by tests/test_sharding.py in its own process: 3 train steps and an evaluation on 8 fake CPU
devices and on 1, with the same seed and data; prints the comparison as one JSON line.

XLA_FLAGS must be set before JAX is imported, which is why this is a separate process. Imported as a
module (tests/multihost_worker.py reuses `run`), it leaves the environment alone.
"""

from __future__ import annotations

import json
import os

if __name__ == "__main__":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()
    os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import numpy as np  # noqa: E402

from genodiff_jax.data.loader import put_data  # noqa: E402
from genodiff_jax.diffusion import GaussianProcess  # noqa: E402
from genodiff_jax.models import build_model  # noqa: E402
from genodiff_jax.sampling import Denoiser, SamplingSettings, generate  # noqa: E402
from genodiff_jax.sharding import make_mesh, put_replicated  # noqa: E402
from genodiff_jax.train import OptimizerConfig, StepRecipe, build_program  # noqa: E402

G, K, C, T, B, N_TRAIN, N_TEST, STEPS = 16, 4, 3, 50, 16, 20, 13, 3


def run(num_devices: int) -> dict:
    """Losses, grad norms, final params and eval metrics on a mesh of `num_devices`."""
    rng = np.random.default_rng(0)
    mask = np.ones((G, K), bool)
    mask[-3:] = False
    x_train = (rng.normal(size=(N_TRAIN, G, K)) * mask).astype(np.float32)
    y_train = rng.integers(0, C, N_TRAIN).astype(np.int32)
    x_test = (rng.normal(size=(N_TEST, G, K)) * mask).astype(np.float32)
    y_test = rng.integers(0, C, N_TEST).astype(np.int32)

    mesh = make_mesh(num_devices)
    model = build_model("mlp_unet", num_classes=C, widths=(32, 16), bottleneck=16, num_groups=4,
                        dropout=0.1)
    opt = OptimizerConfig(learning_rate=1e-3, warmup_steps=1, total_steps=STEPS, clip_grad_norm=1.0)
    process = GaussianProcess("cosine", T, "eps")
    program = build_program(model, process, opt,
                            StepRecipe(batch_size=B, p_uncond=0.2, ema_decay=0.9),
                            row=(G, K), mask=mask, num_classes=C, mesh=mesh)
    state = program.init_state(jax.random.key(0))
    train_data, test_data = put_data(x_train, y_train, mesh), put_data(x_test, y_test, mesh)
    key = put_replicated(jax.random.key(1), mesh)
    step = program.step
    eval_fn = program.evaluation(batch_size=8, num_rows=test_data["x"].shape[0], params="params")

    placement = {
        "params_replicated": all(leaf.sharding.is_fully_replicated
                                 for leaf in jax.tree.leaves(state)),
        "data_devices": len(train_data["x"].sharding.device_set),
        "data_shard_rows": train_data["x"].addressable_shards[0].data.shape[0],
    }
    losses, grad_norms = [], []
    for _ in range(STEPS):
        # Every argument already lives on the devices: any implicit transfer would be an error.
        with jax.transfer_guard("disallow"):
            state, metrics = step(state, train_data, key)
        metrics = jax.device_get(metrics)  # blocks each step (old CPU runtimes can hang otherwise)
        losses.append(float(metrics["loss"]))
        grad_norms.append(float(metrics["grad_norm"]))
    placement["state_replicated_after"] = all(leaf.sharding.is_fully_replicated
                                              for leaf in jax.tree.leaves(state))
    val = {k: float(v)
           for k, v in jax.device_get(eval_fn(state.ema_params, test_data, key)).items()}
    # Sampling from the trained (global, replicated) EMA params on the same mesh: per-row keys make
    # the cohort independent of the device and process count.
    samples = generate(Denoiser(model.apply, state.ema_params, C), process=process,
                       settings=SamplingSettings("ddim", 5, 0.5, seed=2, batch_size=8, mesh=mesh),
                       labels_N=np.arange(8, dtype=np.int32) % C, shape=(G, K), mask=mask)
    return {"losses": losses, "grad_norms": grad_norms, "val": val, "placement": placement,
            "samples": samples,
            "params": [np.asarray(p) for p in jax.tree.leaves(state.params)],
            "ema": [np.asarray(p) for p in jax.tree.leaves(state.ema_params)]}


def max_rel_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(u - v)) / (np.max(np.abs(v)) + 1e-12)) for u, v in zip(a, b))


def main() -> None:
    eight, one = run(8), run(1)
    print(json.dumps({
        "device_count": jax.device_count(),
        "losses_8": eight["losses"], "losses_1": one["losses"],
        "grad_norms_8": eight["grad_norms"], "grad_norms_1": one["grad_norms"],
        "val_8": eight["val"], "val_1": one["val"],
        "params_rel_diff": max_rel_diff(eight["params"], one["params"]),
        "ema_rel_diff": max_rel_diff(eight["ema"], one["ema"]),
        "samples_rel_diff": max_rel_diff([eight["samples"]], [one["samples"]]),
        "samples_std": float(np.std(one["samples"])),
        "placement_8": eight["placement"], "placement_1": one["placement"],
    }))


if __name__ == "__main__":
    main()
