"""How fast the masked family's denoiser learns LD in each of its variants (plain, population
prior, population input, both): a small cohort of 2 classes whose haplotypes are copies of 6
founders a class (strong LD), a small `snp_unet`, 600 Adam steps of 16 people; prints the
validation ELBO (bits per token) every 100 steps beside per-population independent sites. Measured
2026-12-06 on 2 shared CPU cores (README, "The population's frequencies as input, measured"):

    python benchmarks/ld_probe.py plain prior input prior+input   # default: plain prior
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genodiff_jax.data.views import independent_sites_bits, row_context, smoothed_frequencies
from genodiff_jax.diffusion import MaskedProcess
from genodiff_jax.models import MODELS, build_model

L, C, N, FOUNDERS, BATCH, STEPS = 128, 2, 400, 6, 16, 600


def cohort(rng: np.random.Generator):
    """Training and test haplotypes [n, 2, L] (each a founder's copy) and their labels."""
    founders = rng.random((C, FOUNDERS, L)) < rng.uniform(0.1, 0.9, (C, 1, L))
    labels = np.arange(N) % C

    def people(lab):
        pick = rng.integers(0, FOUNDERS, (len(lab), 2))
        return founders[lab[:, None], pick].astype(np.int8)

    return people(labels), labels, people(labels[:100]), labels[:100]


def run(variant: dict, seed: int = 0) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(seed)
    train, y_train, test, y_test = cohort(rng)
    table = smoothed_frequencies(train, y_train, C)
    window = {"pos": np.arange(L, dtype=np.float32) * 500, "af": table[-1], "class_af": table}

    def rows(tokens, labels):
        return {"tokens": jnp.asarray(tokens, jnp.int32),
                **{k: jnp.asarray(v) for k, v in row_context(window, labels).items()}}

    x_train, x_test = rows(train, y_train), rows(test, y_test)
    kwargs = {**MODELS["snp_unet"].TEST_SIZES, "channels": (32, 64), "snp_width": 16}
    model = build_model("snp_unet", num_classes=C, **variant, **kwargs)
    process = MaskedProcess()
    first = jax.tree.map(lambda a: a[:BATCH], x_train)
    params = model.init(jax.random.key(0), first, jnp.ones(BATCH), jnp.asarray(y_train[:BATCH]))
    tx = optax.adam(1e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, key, idx):
        x, y = jax.tree.map(lambda a: a[idx], x_train), jnp.asarray(y_train)[idx]
        k_t, k_u, k_drop = jax.random.split(key, 3)
        t = process.time(k_t, (BATCH,))
        u = jax.random.uniform(k_u, x["tokens"].shape)

        def loss(p):
            net = lambda xx, tt: model.apply(p, xx, tt, y, train=True,  # noqa: E731
                                             rngs={"dropout": k_drop})
            return process.loss(net, x, t, u, None)

        grads = jax.grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    @jax.jit
    def val_bits(params, key):
        k_t, k_u = jax.random.split(key)
        t = process.time(k_t, (len(y_test),))
        u = jax.random.uniform(k_u, x_test["tokens"].shape)
        net = lambda xx, tt: model.apply(params, xx, tt, jnp.asarray(y_test))  # noqa: E731
        return process.loss(net, x_test, t, u, None) / np.log(2.0)

    base = independent_sites_bits(test, y_test, table)
    out = []
    for s in range(1, STEPS + 1):
        params, opt = step(params, opt, jax.random.key(s), jnp.asarray(rng.integers(0, N, BATCH)))
        if s % 100 == 0:
            bits = np.mean([float(val_bits(params, jax.random.key(10_000 + i))) for i in range(5)])
            out.append((s, float(bits), base))
    return out


VARIANTS = {"plain": {}, "prior": {"population_prior": True},
            "input": {"population_input": True},
            "prior+input": {"population_prior": True, "population_input": True}}


def main(names: list[str]) -> None:
    for name in names or ["plain", "prior"]:
        t0 = time.time()
        for s, bits, base in run(VARIANTS[name]):
            print(f"{name} step {s}: val_bits {bits:.4f} (independent sites {base:.4f})",
                  flush=True)
        print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
