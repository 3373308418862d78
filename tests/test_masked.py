"""Masked (absorbing-state) diffusion over genotype tokens: schedules, the ELBO, the sampler,
windows, a pinned train step, and the whole family through the command line."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_trained_run

from genodiff_jax import cli
from genodiff_jax.data.views import (
    cut_windows,
    independent_sites_bits,
    plan_windows,
    smoothed_frequencies,
)
from genodiff_jax.diffusion import MASKING_SCHEDULES, MaskedProcess
from genodiff_jax.diffusion.masked import MASKED_SAMPLERS
from genodiff_jax.sampling.tokens import UNKNOWN, window_start_state

SCHEDULES = [("linear", {}), ("cosine", {}), ("polynomial", {"exponent": 3.0})]


@pytest.mark.parametrize("name,kwargs", SCHEDULES)
def test_schedule_ends_and_elbo_weight(name, kwargs):
    p = MaskedProcess(schedule=name, schedule_kwargs=kwargs)
    assert float(p.alpha(jnp.float32(0.0))) == pytest.approx(1.0)
    assert float(p.alpha(jnp.float32(1.0))) == pytest.approx(0.0, abs=1e-6)
    t = jnp.array([0.1, 0.5, 0.9])
    alpha = np.asarray(p.alpha(t))
    assert np.all(np.diff(alpha) < 0)  # monotone: more masked as t grows
    expected = {"linear": 1 / np.asarray(t),
                "cosine": (math.pi / 2) * np.cos(math.pi / 2 * np.asarray(t))
                / np.sin(math.pi / 2 * np.asarray(t)),
                "polynomial": 3 * np.asarray(t) ** 2 / np.asarray(t) ** 3}[name]
    np.testing.assert_allclose(np.asarray(p.weight(t)), expected, rtol=1e-4)


def test_a_schedule_that_does_not_reach_zero_is_refused():
    MASKING_SCHEDULES.register("half_test", lambda t: 1.0 - 0.5 * t)
    try:
        with pytest.raises(ValueError, match="alpha_1"):
            MaskedProcess(schedule="half_test")
    finally:
        del MASKING_SCHEDULES["half_test"]


def _toy_batch(B=6, H=2, L=16, seed=0):
    rng = np.random.default_rng(seed)
    tokens = jnp.asarray(rng.integers(0, 2, (B, H, L)), jnp.int32)
    return {"tokens": tokens, "pos": jnp.tile(jnp.arange(L, dtype=jnp.float32) * 100, (B, 1))}


def test_the_elbo_of_a_perfect_model_is_zero_and_of_a_uniform_one_is_one_bit():
    p = MaskedProcess()
    x0 = _toy_batch()
    t = jnp.linspace(0.05, 0.95, 6)
    u = jax.random.uniform(jax.random.key(0), x0["tokens"].shape)

    def perfect(x_t, t):
        return 30.0 * (2 * jax.nn.one_hot(x0["tokens"], 2) - 1)

    assert float(p.loss(perfect, x0, t, u, None)) == pytest.approx(0.0, abs=1e-6)
    uniform = lambda x_t, t: jnp.zeros((*x_t["tokens"].shape, 2))  # noqa: E731
    # At any t, E over u of (weight x masked count) is the token count: log 2 nats each.
    for t_value in (0.2, 0.7):
        t_B = jnp.full((6,), t_value)
        keys = jax.random.split(jax.random.key(1), 300)
        bits = [float(p.eval_terms(uniform, x0, t_B, jax.random.uniform(k, u.shape), None,
                                   jnp.ones(6))["val_bits"]) for k in keys]
        assert np.mean(bits) == pytest.approx(1.0, rel=0.02)


def test_masked_positions_carry_the_loss_and_padding_never():
    p = MaskedProcess()
    x0 = _toy_batch(L=8)
    seen = {}

    def net(x_t, t):
        seen["x_t"] = x_t["tokens"]
        return jnp.zeros((*x_t["tokens"].shape, 2))

    mask = jnp.arange(8) < 6
    u = jnp.zeros(x0["tokens"].shape)  # everything under 1 - alpha_t: all real tokens masked
    p.loss(net, x0, jnp.full((6,), 0.5), u, mask)
    assert np.all(np.asarray(seen["x_t"])[:, :, :6] == p.mask_id)
    assert not np.any(np.asarray(seen["x_t"])[:, :, 6:] == p.mask_id)


def _run_sampler(x_T, steps=8, seed=0, sampler="ancestral", **options):
    p = MaskedProcess()
    calls = []

    def net(x, t):
        calls.append(1)
        return jnp.zeros((*x["tokens"].shape, 2))  # uniform over {0, 1}

    keys = jax.random.split(jax.random.key(seed), x_T["tokens"].shape[0])
    out = p.sample(sampler, net, p.sampling_grid(steps), keys, x_T, mask=None,
                   options=options)
    return np.asarray(out), len(calls)


@pytest.mark.parametrize("sampler", sorted(MASKED_SAMPLERS))
def test_the_sampler_unmasks_everything_and_never_changes_a_clamped_token(sampler):
    p = MaskedProcess()
    x = _toy_batch(B=64, L=32)
    clamp = np.random.default_rng(3).random((64, 2, 32)) < 0.3
    start = np.where(clamp, np.asarray(x["tokens"]), p.mask_id)
    out, calls = _run_sampler({"tokens": jnp.asarray(start), "pos": x["pos"]}, sampler=sampler)
    assert calls == 1  # one traced model call inside the scan
    assert set(np.unique(out)) <= {0, 1}
    np.testing.assert_array_equal(out[clamp], np.asarray(x["tokens"])[clamp])
    assert 0.45 < out[~clamp].mean() < 0.55  # uniform model: fair coin flips


@pytest.mark.parametrize("sampler", sorted(MASKED_SAMPLERS))
def test_a_state_with_mean_gets_the_expected_value_of_each_drawn_token(sampler):
    """Imputation's dosage (`_record_mean`): a token drawn at P(1) = 0.2 records 0.2 whatever it
    drew (at temperature 2: the tempered 1 / (1 + 4^(1/2)) = 1/3), a clamped one keeps the
    value the caller set, and the tokens are those of the same draw without the mean."""
    p = MaskedProcess()
    x = _toy_batch(B=16, L=32)
    clamp = np.random.default_rng(4).random((16, 2, 32)) < 0.3
    start = {"tokens": jnp.asarray(np.where(clamp, np.asarray(x["tokens"]), p.mask_id)),
             "pos": x["pos"]}
    keys = jax.random.split(jax.random.key(0), 16)

    def net(x, t):
        return jnp.broadcast_to(jnp.log(jnp.asarray([0.8, 0.2])), (*x["tokens"].shape, 2))

    def run(state, temperature):
        return p.sample(sampler, net, p.sampling_grid(8), keys, state, mask=None,
                        options={"temperature": temperature})

    mean0 = np.where(clamp, np.asarray(x["tokens"]), -1).astype(np.float32)
    for temperature, want in ((1.0, 0.2), (2.0, 1 / 3)):
        out = run({**start, "mean": jnp.asarray(mean0)}, temperature)
        mean, tokens = np.asarray(out["mean"]), np.asarray(out["tokens"])
        np.testing.assert_allclose(mean[~clamp], want, rtol=1e-5)
        np.testing.assert_array_equal(mean[clamp], np.asarray(x["tokens"])[clamp])
        np.testing.assert_array_equal(tokens, np.asarray(run(start, temperature)))
        assert set(np.unique(tokens[~clamp])) == {0, 1}


def test_samples_depend_on_the_row_key_only():
    x = _toy_batch(B=8, L=32)
    start = {"tokens": jnp.full(x["tokens"].shape, 2, jnp.int32), "pos": x["pos"]}
    a, _ = _run_sampler(start)
    b, _ = _run_sampler(start)
    np.testing.assert_array_equal(a, b)
    c, _ = _run_sampler(start, seed=1)
    assert (a != c).any()
    assert "temperature" in MASKED_SAMPLERS["ancestral"].__kwdefaults__


def test_windows_cover_the_region_and_stitch_by_inpainting():
    plan = plan_windows(1000, window=256, overlap=64, multiple=16)
    starts = plan.starts
    assert starts[0] == 0 and starts[-1] + 256 == 1000 and np.all(np.diff(starts) <= 192)
    small = plan_windows(100, window=256, overlap=64, multiple=16)
    assert small.length == 112 and small.real == 100 and small.mask().sum() == 100
    tokens = np.random.default_rng(0).integers(0, 2, (3, 2, 1000)).astype(np.int8)
    context = {"pos": np.arange(1000, dtype=np.float32) * 10,
               "af": np.linspace(0, 1, 1000, dtype=np.float32),
               "class_af": smoothed_frequencies(tokens, np.array([0, 1, 1]), 2)}
    rows = cut_windows(tokens, context, plan, np.array([0, 1, 1]))
    assert rows["tokens"].shape == (3 * len(starts), 2, 256) and rows["af"].shape == (15, 256)
    # Each row carries its own class's smoothed frequencies and the pooled ones.
    np.testing.assert_array_equal(rows["class_af"][len(starts) + 1],
                                  context["class_af"][1, starts[1]:starts[1] + 256])
    np.testing.assert_array_equal(rows["pooled_af"][1],
                                  context["class_af"][2, starts[1]:starts[1] + 256])
    np.testing.assert_array_equal(rows["pos"][1], context["pos"][starts[1]:starts[1] + 256])
    np.testing.assert_array_equal(rows["tokens"][1], tokens[0, :, starts[1]:starts[1] + 256])
    # A later window starts from the previous windows' tokens in its overlap, MASK elsewhere.
    generated = np.zeros((3, 2, 1000), np.int8)
    generated[:, :, :256] = tokens[:, :, :256]
    state = window_start_state(generated, None, plan, int(starts[1]), 256, mask_id=2)
    overlap = 256 - int(starts[1])
    np.testing.assert_array_equal(state[:, :, :overlap], tokens[:, :, starts[1]:256])
    assert np.all(state[:, :, overlap:] == 2)
    known = np.full((3, 2, 1000), UNKNOWN, np.int8)
    known[:, :, 900] = 1
    state = window_start_state(generated, known, plan, int(starts[-1]), 256, mask_id=2)
    assert np.all(state[:, :, 900 - starts[-1]] == 1)


# -- the family end to end -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def masked_run(tmp_path_factory):
    yield from tiny_trained_run(tmp_path_factory, "masked", "experiments/masked.py:smoke")


def test_training_logs_the_elbo_in_bits_and_keeps_the_best(masked_run):
    lines = [json.loads(x)
             for x in (masked_run / "train" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if "val_bits" in r]
    assert [r["step"] for r in evals] == [10, 20]
    assert all(0 < r["val_bits"] < 2 for r in evals)
    run = json.loads((masked_run / "train" / "run.json").read_text())
    assert run["row"]["tokens"]["shape"] == [2, 256] and run["row"]["tokens"]["dtype"] == "int8"
    assert run["row"]["af"]["shape"] == [256]


def test_sampling_writes_phased_genotypes_of_the_dataset_s_variants(masked_run, capsys):
    from genodiff_jax.data import io
    from genodiff_jax.data.loader import load_prepared

    out = masked_run / "synthetic"
    assert cli.main(["sample", "--workdir", str(masked_run / "train"), "--n", "9", "--labels",
                     "train", "--out", str(out), "--steps", "4", "--sampler-options",
                     "temperature=0.8", "--pgen", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["phased"] and summary["steps"] == 4
    data = load_prepared(masked_run / "data")
    g = io.read_vcf(out / "synthetic.vcf.gz", haplotypes=True, drop_monomorphic=False,
                    progress=False)
    assert g.phased and g.shape == (9, len(data.variants.pos))
    np.testing.assert_array_equal(g.variants.pos, data.variants.pos)
    assert not (out / "features.npz").exists()
    # The PLINK 2 copy holds the same haplotypes, phased.
    import pgenlib

    n, s = g.shape
    with pgenlib.PgenReader(str(out / "synthetic.pgen").encode()) as reader:
        assert reader.hardcall_phase_present()
        alleles = np.empty((s, 2 * n), np.int32)
        reader.read_alleles_range(0, s, alleles)
    np.testing.assert_array_equal(alleles.reshape(s, n, 2).transpose(1, 2, 0), g.haplotypes())


def test_a_pinned_masked_train_step():
    """The first two losses of a fixed tiny masked setup (copied from a run on jax 0.10.2, CPU)."""
    from genodiff_jax.data.loader import put_data
    from genodiff_jax.models import MODELS, build_model
    from genodiff_jax.sharding import make_mesh
    from genodiff_jax.train import OptimizerConfig, StepRecipe, build_program

    model = build_model("snp_unet", num_classes=3, **MODELS["snp_unet"].TEST_SIZES)
    row = {"tokens": jax.ShapeDtypeStruct((2, 32), np.int8),
           "pos": jax.ShapeDtypeStruct((32,), np.float32),
           "af": jax.ShapeDtypeStruct((32,), np.float32)}
    program = build_program(model, MaskedProcess(window=32, overlap=8),
                            OptimizerConfig(learning_rate=1e-3, warmup_steps=0, total_steps=10),
                            StepRecipe(batch_size=4), row=row, mask=None, num_classes=3,
                            mesh=make_mesh(1))
    x = _toy_batch(B=8, L=32)
    af = np.tile(np.linspace(0.05, 0.5, 32, dtype=np.float32), (8, 1))
    data = put_data({"tokens": np.asarray(x["tokens"], np.int8), "pos": np.asarray(x["pos"]),
                     "af": af}, np.arange(8) % 3, program.mesh)
    state = program.init_state(jax.random.key(0))
    state, m1 = program.step(state, data, jax.random.key(1))
    state, m2 = program.step(state, data, jax.random.key(1))
    got = [float(m1["loss"]), float(m2["loss"]), float(m1["grad_norm"])]
    np.testing.assert_allclose(got, PINNED, rtol=1e-5)


PINNED = [0.698184609413147, 0.6927345991134644, 1.2868545055389404]  # loss 1, loss 2, grad norm


def test_impute_fills_no_calls_and_hidden_sites_and_keeps_what_was_observed(masked_run,
                                                                            tmp_path, capfd):
    from conftest import write_text_vcf

    from genodiff_jax.data import io
    from genodiff_jax.data.loader import load_prepared

    data = load_prepared(masked_run / "data")
    truth = np.asarray(data.tokens("test"))  # [n, 2, S]
    v = data.variants
    missing = np.zeros(truth.shape[::2], bool)  # [n, S]
    missing[:, 5::7] = True
    rows = []
    for j in range(len(v.pos)):
        gts = [".|." if missing[i, j] else f"{truth[i, 0, j]}|{truth[i, 1, j]}"
               for i in range(len(truth))]
        rows.append((v.chrom[j], int(v.pos[j]), v.id[j], v.ref[j], v.alt[j], gts))
    samples = [f"P{i}" for i in range(len(truth))]
    vcf = write_text_vcf(tmp_path / "holes.vcf", samples, rows)
    sites = tmp_path / "sites.txt"
    sites.write_text(f"{v.chrom[3]}:{v.pos[3]}\n")
    out = tmp_path / "imputed"
    assert cli.main(["impute", "--workdir", str(masked_run / "train"), "--vcf", str(vcf),
                     "--out", str(out), "--mask-sites", str(sites), "--steps", "4",
                     "--quiet"]) == 0
    summary = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    hidden = missing.copy()
    hidden[:, 3] = True
    assert summary["n_imputed_alleles"] == 2 * hidden.sum()
    g = io.read_vcf(out / "imputed.vcf.gz", haplotypes=True, drop_monomorphic=False,
                    progress=False)
    haps = g.haplotypes()
    observed = ~hidden
    np.testing.assert_array_equal(haps.transpose(0, 2, 1)[observed], truth.transpose(0, 2, 1)[
        observed])
    assert set(np.unique(haps)) <= {0, 1}
    dosages = np.load(out / "dosages.npz")["dosages"]
    assert dosages.shape == truth.shape[::2] and np.all((dosages >= 0) & (dosages <= 2))
    np.testing.assert_array_equal(dosages[observed], truth.sum(axis=1)[observed])
    # the posterior, not the drawn alleles (which would be whole numbers)
    assert summary["dosage"] == "posterior" and np.mean(dosages[hidden] % 1 != 0) > 0.5
    # the VCF carries them as Beagle writes them: FORMAT/DS, INFO DR2 / AF, IMP where no one
    # was observed (the masked site and every 7th from the 5th)
    from cyvcf2 import VCF

    from genodiff_jax.sampling.impute import estimated_r2

    records = list(VCF(str(out / "imputed.vcf.gz")))
    ds = np.stack([r.format("DS")[:, 0] for r in records], axis=1)
    np.testing.assert_allclose(ds, dosages, atol=5e-4)
    dr2 = np.array([r.INFO["DR2"] for r in records])
    polymorphic = truth.min(axis=(0, 1)) != truth.max(axis=(0, 1))
    assert np.all((dr2 >= 0) & (dr2 <= 1)) and np.all(dr2[~hidden.any(axis=0) & polymorphic] == 1)
    imp = np.array([r.INFO.get("IMP") is not None for r in records])
    np.testing.assert_array_equal(imp, hidden.all(axis=0))
    haplotype_dosages = np.load(out / "dosages.npz")["haplotype_dosages"]
    np.testing.assert_allclose(haplotype_dosages.sum(axis=1), dosages, rtol=1e-6)
    np.testing.assert_allclose(dr2, estimated_r2(haplotype_dosages), atol=5e-4)
    assert dr2[hidden.all(axis=0)].max() < 1  # no one seen there: never sure of everyone
    bad = cli.main(["impute", "--workdir", str(masked_run / "train"), "--vcf", str(vcf),
                    "--out", str(tmp_path / "x"), "--mask-sites", str(vcf)])
    assert bad == 2 and not (tmp_path / "x").exists()


def test_the_estimated_r2_is_the_variance_of_the_allele_probabilities():
    """Beagle's DR2: sure alleles read 1, one probability for everyone 0, and in between the
    variance over haplotypes against a sure allele's at the same mean."""
    from genodiff_jax.sampling.impute import estimated_r2

    sure = np.array([[[0, 1, 1]], [[1, 1, 0]]], np.float32)  # [N=2, H=1, S=3]
    np.testing.assert_array_equal(estimated_r2(sure), [1, 0, 1])  # the middle site: all ALT
    unsure = np.array([[[0.9, 0.3], [0.1, 0.3]], [[0.1, 0.3], [0.9, 0.3]]])  # [2, 2, 2]
    np.testing.assert_allclose(estimated_r2(unsure), [0.64, 0.0], atol=1e-6)


def test_the_posterior_dosage_is_one_call_from_what_is_observed(masked_run):
    """`DOSAGES["posterior"]`: every hidden allele's expected value from one model call on the
    observed alleles alone, window by window, so nothing drawn reaches it: the same for any seed
    and any number of steps (the "draws" dosage, which follows the draws, is not), observed
    alleles kept, and a window's values not moved by what the window before it drew."""
    from genodiff_jax.data.loader import load_prepared
    from genodiff_jax.data.views import token_plan
    from genodiff_jax.sampling.impute import DOSAGES, imputation_settings, impute_tokens
    from genodiff_jax.sampling.settings import SamplingSettings
    from genodiff_jax.train.trained import load_trained

    trained = load_trained(masked_run / "train")
    data = load_prepared(masked_run / "data")
    assert len(token_plan(data, trained.process, trained.model).starts) >= 2  # windows overlap
    truth = np.asarray(data.tokens("test"))[:6]
    observed = np.zeros(truth.shape[-1], bool)
    observed[::4] = True
    known = np.where(observed, truth, UNKNOWN).astype(np.int8)
    labels = np.full(len(truth), trained.num_classes, np.int32)

    def dosage(name, draws, steps, seed):
        settings = imputation_settings(trained, SamplingSettings(steps=steps, seed=seed))
        filled, haplotype_dosages = impute_tokens(trained, data, known, labels, settings,
                                                  draws=draws, dosage=name)
        assert haplotype_dosages.shape == truth.shape
        return filled, haplotype_dosages.sum(axis=1)

    _, posterior = dosage("posterior", 0, 4, 0)
    filled, again = dosage("posterior", 1, 8, 1)
    np.testing.assert_array_equal(posterior, again)
    assert filled.shape == (1, *truth.shape)
    np.testing.assert_array_equal(posterior[:, observed], truth.sum(axis=1)[:, observed])
    hidden = posterior[:, ~observed]
    assert np.all((hidden > 0) & (hidden < 2)) and np.mean(hidden % 0.5 != 0) > 0.9
    _, drawn0 = dosage("draws", 1, 4, 0)
    _, drawn1 = dosage("draws", 1, 4, 1)
    assert not np.allclose(drawn0, drawn1) and not np.allclose(drawn0, posterior)
    with pytest.raises(ValueError, match="needs draws >= 1"):
        dosage("draws", 0, 4, 0)
    assert sorted(DOSAGES) == ["draws", "posterior"]


def test_eight_devices_train_evaluate_and_sample_like_one():
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("sharded_masked_worker.py")
    root = worker.parents[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(worker)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["device_count"] == 8
    np.testing.assert_allclose(r["eight"]["losses"], r["one"]["losses"], rtol=1e-5)
    assert r["eight"]["val"]["val_bits"] == pytest.approx(r["one"]["val"]["val_bits"], rel=1e-5)
    assert r["eight"]["samples"] == r["one"]["samples"]  # per-row keys: the same tokens


def test_a_killed_masked_run_resumes_to_the_same_metrics(masked_run, tmp_path):
    from genodiff_jax.train import load_config, train

    config = load_config("experiments/masked.py:smoke")
    whole = train(config, masked_run / "data", tmp_path / "whole", progress=False)
    train(config, masked_run / "data", tmp_path / "split", stop_at_step=10, progress=False)
    resumed = train(config, masked_run / "data", tmp_path / "split", progress=False)
    for k in ("step", "loss", "grad_norm", "val_bits"):
        assert resumed[k] == whole[k], k


# -- the population prior, exact draws, step spacing (issue 25) ------------------------------------

def _prior_setup(tokens_kind: str, **flags):
    """A snp_unet with the population prior (or `flags`), untrained, and a batch of people of 3
    classes with their smoothed class frequencies (from a separate 'training' set)."""
    from genodiff_jax.data.views import row_context
    from genodiff_jax.models import MODELS, build_model

    rng = np.random.default_rng(0)
    L, C = 32, 3
    V = 2 if tokens_kind == "haplotypes" else 3
    freq = rng.uniform(0.02, 0.98, (C, L))
    def people(n, labels):
        alleles = rng.random((n, 2, L)) < freq[labels][:, None]
        return alleles.astype(np.int8) if V == 2 else alleles.sum(axis=1).astype(np.int8)
    train_labels = np.arange(60) % C
    table = smoothed_frequencies(people(60, train_labels), train_labels, C)
    labels = np.arange(12) % C
    tokens = people(12, labels)
    window = {"pos": np.arange(L, dtype=np.float32) * 100, "af": table[-1], "class_af": table}
    x0 = {"tokens": jnp.asarray(tokens if V == 2 else tokens[:, None], jnp.int32),
          **{k: jnp.asarray(v) for k, v in row_context(window, labels).items()}}
    model = build_model("snp_unet", num_classes=C, vocab_size=V,
                        **(flags or {"population_prior": True}), **MODELS["snp_unet"].TEST_SIZES)
    # jitted here and below: eagerly, each of the model's ops compiles apart
    params = jax.jit(model.init)(jax.random.key(0), x0, jnp.ones(12), jnp.asarray(labels))
    return model, params, x0, labels, table


@pytest.mark.parametrize("tokens_kind", ["haplotypes", "genotypes"])
def test_an_untrained_prior_model_is_exactly_per_population_independent_sites(tokens_kind):
    model, params, x0, labels, table = _prior_setup(tokens_kind)
    assert not np.any(np.asarray(params["params"]["out"]["kernel"]))  # the output starts at zero
    p = MaskedProcess(tokens=tokens_kind)
    B = len(labels)
    tokens = np.asarray(x0["tokens"])
    tokens = tokens if tokens_kind == "haplotypes" else tokens[:, 0]
    # one program for every label set, time and draw (jitted: eagerly each op compiles apart)
    loss = jax.jit(lambda y, t, u: p.loss(lambda x, t: model.apply(params, x, t, y), x0, t, u,
                                          None))
    nats = {}
    for y in (labels, np.full(B, 3)):  # the classes, and the null label 3: pooled frequencies
        want = nats[y[0] == 3] = independent_sites_bits(tokens, y, table) * math.log(2)
        y = jnp.asarray(y)
        # t = 1 masks everything with ELBO weight 1: the loss is the baseline's cross-entropy.
        at_one = loss(y, jnp.ones(B), jnp.zeros(x0["tokens"].shape))
        assert float(at_one) == pytest.approx(want, rel=1e-5)
        # At any t it is so in expectation (the linear schedule's weight x masked share = 1).
        keys = jax.random.split(jax.random.key(1), 200)
        u = [jax.random.uniform(k, x0["tokens"].shape) for k in keys]
        got = np.mean([float(loss(y, jnp.full((B,), 0.3), u_k)) for u_k in u])
        assert got == pytest.approx(want, rel=0.03)
    # The class prior is worth something: the pooled one is worse on these class-structured people.
    assert nats[False] < nats[True] - 0.05


def test_population_input_reads_the_class_frequency_or_the_pooled_one_for_the_null_label():
    """population_input: each SNP's vector holds the frequency of the person's population (the
    pooled frequency for the null label), so changing that table changes the logits, and changing
    the other one does not."""
    model, params, x0, labels, _ = _prior_setup("haplotypes", population_input=True)
    params = jax.tree.map(lambda a: a + 0.05, params)  # a nonzero network whatever the init
    t = jnp.full((len(labels),), 0.5)
    x0 = {**x0, "tokens": jnp.full_like(x0["tokens"], 2)}  # all masked: only the context speaks

    apply = jax.jit(model.apply)

    def logits(y, **change):
        return np.asarray(apply(params, {**x0, **change}, t, jnp.asarray(y)))

    null = np.full(len(labels), 3)
    flipped = {"class_af": 1.0 - x0["class_af"]}
    other_pooled = {"pooled_af": jnp.full_like(x0["pooled_af"], 0.2)}
    assert np.abs(logits(labels, **flipped) - logits(labels)).max() > 1e-3
    np.testing.assert_array_equal(logits(labels, **other_pooled), logits(labels))
    assert np.abs(logits(null, **other_pooled) - logits(null)).max() > 1e-3
    np.testing.assert_array_equal(logits(null, **flipped), logits(null))


def test_smoothed_frequencies_are_never_zero_or_one_and_count_by_class():
    tokens = np.zeros((4, 2, 3), np.int8)
    tokens[0, :, 0] = 1  # person 0 (class 0) carries ALT twice at SNP 0
    table = smoothed_frequencies(tokens, np.array([0, 0, 1, 1]), 3)
    assert table.shape == (4, 3) and np.all((table > 0) & (table < 1))
    np.testing.assert_allclose(table[0, 0], 2.5 / 5)  # (2 + 1/2) / (4 alleles + 1)
    np.testing.assert_allclose(table[1, 0], 0.5 / 5)
    np.testing.assert_allclose(table[2], 0.5)  # no person of class 2
    np.testing.assert_allclose(table[3, 0], 2.5 / 9)  # everyone
    # Bits per token: person 0's ALT alleles at SNP 0 cost -log2(q), the other tokens -log2(1 - q).
    q = table[0]
    want = -(2 * np.log2(q[0]) + 2 * np.log2(1 - q[1]) + 2 * np.log2(1 - q[2])) / 6
    assert independent_sites_bits(tokens[:1], np.array([0]), table) == pytest.approx(want)
    dosages = tokens.sum(axis=1)[:1]  # Hardy-Weinberg: q^2 for the ALT homozygote, (1 - q)^2 else
    want = -(2 * np.log2(q[0]) + 2 * np.log2(1 - q[1]) + 2 * np.log2(1 - q[2])) / 3
    assert independent_sites_bits(dosages, np.array([0]), table) == pytest.approx(want)


def test_a_rare_value_is_drawn_at_its_probability():
    from genodiff_jax.diffusion.masked import draw

    n, prob = 4_000_000, 1e-4
    logits = jnp.broadcast_to(jnp.log(jnp.asarray([1 - prob, prob], jnp.float32)), (n, 2))
    count = int(jnp.sum(draw(jax.random.key(3), logits)))
    sd = math.sqrt(n * prob * (1 - prob))
    assert abs(count - n * prob) < 4 * sd, (count, n * prob)


def test_step_spacings_end_where_the_grid_does_and_cosine_starts_slowly():
    from genodiff_jax.diffusion.masked import SPACINGS

    u = jnp.linspace(1.0, 0.0, 9)
    for name in SPACINGS:
        t = np.asarray(SPACINGS[name](u))
        assert t[0] == pytest.approx(1.0) and t[-1] == pytest.approx(0.0)
        assert np.all(np.diff(t) < 0)
    cosine = np.asarray(SPACINGS["cosine"](u))
    assert 1 - cosine[1] < 1 - float(u[1])  # a shorter first step than the even grid's
    p = MaskedProcess()
    assert p.sampler_options("ancestral", {"spacing": "cosine"}) == {"spacing": "cosine"}
    with pytest.raises(ValueError, match="cosine"):
        p.sampler_options("ancestral", {"spacing": "log"})


def test_impute_matches_by_allele_says_what_it_used_and_refuses_what_it_cannot_use(
        masked_run, tmp_path, capfd):
    """Issue 27: swapped REF/ALT is read flipped, another ALT skipped and counted, `./.` is a
    no-call, a VCF with no site in common is an error; the summary is on stderr and in
    summary.json. --calling does not apply to a token run."""
    from conftest import write_text_vcf

    from genodiff_jax.data import io
    from genodiff_jax.data.loader import load_prepared

    data = load_prepared(masked_run / "data")
    truth = np.asarray(data.tokens("test"))[:4]  # [4, 2, S]
    v = data.variants
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    rows = []
    for j in range(len(v.pos)):
        gts = [f"{truth[i, 0, j]}|{truth[i, 1, j]}" for i in range(len(truth))]
        ref, alt = v.ref[j], v.alt[j]
        if j % 10 == 1:  # swapped: the alleles are written against the other base
            ref, alt = alt, ref
            gts = [f"{1 - truth[i, 0, j]}|{1 - truth[i, 1, j]}" for i in range(len(truth))]
        elif j % 10 == 2:  # another ALT allele
            alt = other[alt] if other[alt] != ref else other[other[alt]]
        elif j % 10 == 3:
            gts[0] = "./."
        rows.append((v.chrom[j], int(v.pos[j]), v.id[j], ref, alt, gts))
    samples = [f"P{i}" for i in range(len(truth))]
    vcf = write_text_vcf(tmp_path / "mixed.vcf", samples, rows)
    out = tmp_path / "imputed"
    work = str(masked_run / "train")
    assert cli.main(["impute", "--workdir", work, "--vcf", str(vcf), "--out", str(out),
                     "--steps", "2", "--quiet"]) == 0
    captured = capfd.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    s = len(v.pos)
    n_flip, n_other, n_nocall = (len(range(k, s, 10)) for k in (1, 2, 3))
    assert summary["sites"] == {"matched": s - n_flip - n_other, "flipped": n_flip,
                                "skipped_other_alleles": n_other, "absent": 0, "masked": 0,
                                "vcf_sites_not_in_model": 0}
    assert summary["n_imputed_alleles"] == 2 * (len(truth) * n_other + n_nocall)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert f"{n_flip} flipped (REF/ALT swapped), {n_other} skipped (other alleles)" in \
        captured.err
    haps = io.read_vcf(out / "imputed.vcf.gz", haplotypes=True, drop_monomorphic=False,
                       progress=False).haplotypes()
    flipped = np.arange(1, s, 10)
    np.testing.assert_array_equal(haps[:, :, flipped], truth[:, :, flipped])  # not made up

    moved = [(c, p + 1, i, r, a, g) for c, p, i, r, a, g in rows]  # no site in common
    elsewhere = write_text_vcf(tmp_path / "elsewhere.vcf", samples, moved)
    (tmp_path / "sites_dir").mkdir()
    cases = [
        (["--vcf", str(elsewhere)], "no site in common with the model's"),
        (["--vcf", str(vcf), "--draws", "100000"], "--draws must be in [1, 1000]"),
        (["--vcf", str(vcf), "--dosage", "mode"], "--dosage must be one of posterior, draws"),
        (["--vcf", str(vcf), "--draws", "3"], "--draws 3 fills the people 3 times"),
        (["--vcf", str(vcf), "--mask-sites", str(tmp_path / "none.txt")], "file not found"),
        (["--vcf", str(vcf), "--mask-sites", str(tmp_path / "sites_dir")], "is a directory"),
        (["--vcf", str(vcf), "--reference", str(vcf)], "whose model reads a reference panel"),
    ]
    for args, message in cases:
        rc = cli.main(["impute", "--workdir", work, "--out", str(tmp_path / "x"), "--quiet",
                       *args])
        err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
        assert rc == 2 and len(err) == 1 and message in err[0], (args, err)
    rc = cli.main(["sample", "--workdir", work, "--n", "2", "--calling", "round", "--out",
                   str(tmp_path / "x")])
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and "--calling: this run samples tokens" in err[0]
    for args in (["--reference", str(vcf)], ["--panel-size", "8"]):
        rc = cli.main(["sample", "--workdir", work, "--n", "2", "--out", str(tmp_path / "x"),
                       *args])
        err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
        assert rc == 2 and len(err) == 1 and f"{args[0]} is for a run whose model reads" \
            in err[0], (args, err)
    assert not (tmp_path / "x").exists()


def test_q_sample_masks_each_token_with_probability_one_minus_alpha() -> None:
    """The named forward process: under the linear schedule at t = 0.3 about 30 % of the valid
    tokens become MASK, the rest keep their value, and padding (not valid) is never masked."""
    process = MaskedProcess()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2, (64, 2, 500)).astype(np.int32)
    valid = np.arange(500) < 400
    u = jax.random.uniform(jax.random.key(0), tokens.shape)
    x_t, masked = process.q_sample({"tokens": tokens}, jnp.full((64,), 0.3), u, valid)
    x_t, masked = np.asarray(x_t["tokens"]), np.asarray(masked)
    assert abs(masked[..., :400].mean() - 0.3) < 0.01 and not masked[..., 400:].any()
    assert np.all(x_t[masked] == process.mask_id)
    np.testing.assert_array_equal(x_t[~masked], tokens[~masked])
