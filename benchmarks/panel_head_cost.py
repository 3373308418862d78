"""What the panel family's copying head costs: `snp_panel` against `snp_unet` at the same sizes
(experiments/demo_panel.py's model), one call and one gradient at batch B over a window of 4096
SNPs, R = 16 panel rows, float32, median of 3 after a compiling call.

    python benchmarks/panel_head_cost.py [B]
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import demo_panel
from genodiff_jax.models import build_model

L, R, CLASSES = 4096, 16, 5


def timed(fn, *args) -> float:
    """Median seconds of 3 calls after a compiling one."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(batch: int) -> None:
    config = demo_panel.get_config()
    rng = np.random.default_rng(0)
    x = {"tokens": jnp.asarray(rng.integers(0, 3, (batch, 2, L)), jnp.int32),
         "pos": jnp.asarray(np.cumsum(rng.uniform(10, 500, (batch, L)), axis=1), jnp.float32),
         **{k: jnp.asarray(rng.uniform(0.01, 0.5, (batch, L)), jnp.float32)
            for k in ("af", "class_af", "pooled_af")},
         "panel": jnp.asarray(rng.integers(0, 2, (batch, R, L)), jnp.int8)}
    t, y = jnp.full((batch,), 0.5), jnp.zeros((batch,), jnp.int32)
    for name in ("snp_unet", "snp_panel"):
        kwargs = dict(config.model.kwargs)
        if name == "snp_unet":
            del kwargs["copy_width"], kwargs["scales"]
        model = build_model(name, num_classes=CLASSES, **kwargs)
        params = model.init(jax.random.key(0), x, t, y)
        call = jax.jit(lambda p, x, m=model: m.apply(p, x, t, y))
        grad = jax.jit(jax.grad(lambda p, x, m=model: m.apply(p, x, t, y).sum()))
        n = sum(a.size for a in jax.tree.leaves(params))
        call_ms, grad_ms = timed(call, params, x) * 1e3, timed(grad, params, x) * 1e3
        print(f"{name}: {n} parameters; batch {batch} x {L} SNPs: call {call_ms:.0f} ms, "
              f"gradient {grad_ms:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
