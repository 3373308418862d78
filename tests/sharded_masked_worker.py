"""Run by tests/test_masked.py in its own process: the masked family's train step, evaluation and
sampler on 8 fake CPU devices and on 1, same seeds and data; prints the comparison as one JSON line
(XLA_FLAGS must be set before JAX is imported)."""

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
from genodiff_jax.diffusion import MaskedProcess  # noqa: E402
from genodiff_jax.models import MODELS, build_model  # noqa: E402
from genodiff_jax.sampling import Denoiser, SamplingSettings, generate  # noqa: E402
from genodiff_jax.sharding import make_mesh, put_replicated  # noqa: E402
from genodiff_jax.train import OptimizerConfig, StepRecipe, build_program  # noqa: E402

L, C, B, N, STEPS = 32, 3, 16, 20, 3


def run(num_devices: int) -> dict:
    rng = np.random.default_rng(0)
    x = {"tokens": rng.integers(0, 2, (N, 2, L)).astype(np.int8),
         "pos": np.tile(np.arange(L, dtype=np.float32) * 50, (N, 1)),
         "af": np.tile(np.linspace(0.05, 0.5, L, dtype=np.float32), (N, 1))}
    labels = rng.integers(0, C, N).astype(np.int32)
    mesh = make_mesh(num_devices)
    model = build_model("snp_unet", num_classes=C, **MODELS["snp_unet"].TEST_SIZES)
    process = MaskedProcess(window=L, overlap=8, num_steps=4)
    row = {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in x.items()}
    program = build_program(model, process, OptimizerConfig(learning_rate=1e-3, warmup_steps=1,
                                                            total_steps=STEPS),
                            StepRecipe(batch_size=B, p_uncond=0.2), row=row, mask=None,
                            num_classes=C, mesh=mesh)
    state = program.init_state(jax.random.key(0))
    data = put_data(x, labels, mesh)
    key = put_replicated(jax.random.key(1), mesh)
    losses = []
    for _ in range(STEPS):
        state, metrics = program.step(state, data, key)
        losses.append(float(jax.device_get(metrics["loss"])))  # blocks every step
    val = program.evaluation(batch_size=8, num_rows=data["labels"].shape[0])
    val = {k: float(v) for k, v in jax.device_get(val(state.ema_params, data, key)).items()}
    start = {**{k: v[:8] for k, v in x.items()},
             "tokens": np.full((8, 2, L), process.mask_id, np.int8)}
    samples = generate(Denoiser(model.apply, state.ema_params, C), process=process,
                       settings=SamplingSettings("ancestral", 4, seed=2, batch_size=8, mesh=mesh),
                       labels_N=np.arange(8, dtype=np.int32) % C, shape=row, start=start)
    return {"losses": losses, "val": val, "samples": samples.tolist()}


if __name__ == "__main__":
    eight, one = run(8), run(1)
    print(json.dumps({"device_count": jax.device_count(), "eight": eight, "one": one}))
