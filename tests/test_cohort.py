"""The whole-cohort sampler, the labels to generate, genotype calling and the written cohort."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.data import genes, io, tables
from genodiff_jax.data.codec import GeneCodec
from genodiff_jax.diffusion import GaussianProcess, get_schedule
from genodiff_jax.errors import InputError
from genodiff_jax.sampling import (
    LABEL_STRATEGIES,
    CohortTable,
    Denoiser,
    OutputSettings,
    SamplingSettings,
    apportion,
    call_genotypes,
    choose_batch_size,
    draw_labels,
    generate,
    labels_from_spec,
    sample_ids,
    write_cohort,
)
from genodiff_jax.sampling.calling import (
    HYBRID_KEPT,
    features_to_calls,
    frequency_calls,
    frequency_counts,
)
from genodiff_jax.sampling.cohort import (
    HOST_BATCH_PER_DEVICE,
    auto_batch_size,
    bytes_per_sample,
)
from genodiff_jax.sharding import make_mesh

# ----------------------------------------------------------------------------- cohort

T_TRAIN = 100
G, K = 4, 2
CLASS_MEANS = np.array([-2.0, 0.0, 3.0])  # x0 | y ~ N(CLASS_MEANS[y], 0.5^2) in every slot
CLASS_STD = 0.5


def make_exact_apply(trace_log: list | None = None):
    """A "model" that outputs the exact class-conditional E[eps | x_t, y] of Gaussian data."""
    schedule = get_schedule("cosine", T_TRAIN)

    def apply_fn(variables, x, t, y, train=False):
        if trace_log is not None:
            trace_log.append(x.shape)  # runs once per trace, not per call
        t_int = jnp.round(t * T_TRAIN).astype(jnp.int32)
        alpha_t, sigma_t = schedule.alpha_sigma(t_int)
        alpha_t, sigma_t = alpha_t[:, None, None], sigma_t[:, None, None]
        mu = variables["params"]["means"][y][:, None, None]
        return sigma_t * (x - alpha_t * mu) / (alpha_t**2 * CLASS_STD**2 + sigma_t**2)

    return apply_fn


PARAMS = {"means": jnp.asarray(CLASS_MEANS, jnp.float32)}
MASK = np.ones((G, K), bool)
MASK[-1, 1] = False


PROCESS = GaussianProcess("cosine", T_TRAIN, "eps")


def _generate(apply_fn, labels, *, sampler="ancestral", steps=20, sampler_options=None,
              batch_size=None, key=None):
    settings = SamplingSettings(sampler, steps, 0.0, sampler_options, batch_size=batch_size,
                                mesh=make_mesh(1))
    return generate(Denoiser(apply_fn, PARAMS), process=PROCESS, settings=settings,
                    labels_N=labels, shape=(G, K), mask=MASK, key=key)


def test_cohort_follows_its_labels() -> None:
    """Each row is sampled for its own label (the class means differ), padded slots are 0."""
    labels = draw_labels("uniform", 300, class_names=["a", "b", "c"], seed=1)
    out = _generate(make_exact_apply(), labels, batch_size=64, steps=T_TRAIN)
    assert out.shape == (300, G, K) and out.dtype == np.float32
    assert np.all(out[:, ~MASK] == 0)
    for y, mean in enumerate(CLASS_MEANS):
        rows = out[labels == y][:, MASK]
        assert abs(rows.mean() - mean) < 0.1, (y, rows.mean())
        assert abs(rows.std() / CLASS_STD - 1) < 0.15


def test_same_seed_same_cohort_any_batch_size_one_compile() -> None:
    traces: list = []
    apply_fn = make_exact_apply(traces)
    labels = (np.arange(37) % 3).astype(np.int32)
    a = _generate(apply_fn, labels, batch_size=16, sampler="ddim", sampler_options={"eta": 1.0})
    assert len(traces) == 1  # three batches (the last padded), one compiled sampler
    b = _generate(apply_fn, labels, batch_size=16, sampler="ddim", sampler_options={"eta": 1.0})
    assert len(traces) == 1  # cached across calls
    np.testing.assert_array_equal(a, b)
    # Rows draw from fold_in(key, row): neither the batch size nor the batch changes a sample.
    c = _generate(apply_fn, labels, batch_size=8, sampler="ddim", sampler_options={"eta": 1.0})
    np.testing.assert_allclose(a, c, rtol=0, atol=1e-6)
    d = _generate(apply_fn, labels, batch_size=16, sampler="ddim", sampler_options={"eta": 1.0},
                  key=jax.random.key(1))
    assert np.abs(a - d)[:, MASK].min() > 0
    first_rows = _generate(apply_fn, labels[:5], batch_size=16, sampler="ddim",
                           sampler_options={"eta": 1.0})
    np.testing.assert_allclose(first_rows, a[:5], rtol=0, atol=1e-6)


def test_guidance_in_the_cohort() -> None:
    """The null label's row of the toy means is the unconditional model: guidance pushes each
    class away from it, by (1 + w) m_y - w m_null for the x0 the exact denoisers agree on."""
    params = {"means": jnp.asarray([-2.0, 0.0, 3.0, 1.0], jnp.float32)}  # row 3 = null label
    labels = np.repeat(np.arange(3, dtype=np.int32), 100)
    w = 0.5
    settings = SamplingSettings("ddim", T_TRAIN, w, batch_size=128, mesh=make_mesh(1))
    args = dict(process=PROCESS, settings=settings, labels_N=labels, shape=(G, K), mask=MASK)
    guided = generate(Denoiser(make_exact_apply(), params, num_classes=3), **args)
    for y in range(3):
        expected = (1 + w) * CLASS_MEANS[y] - w * 1.0
        assert abs(guided[labels == y][:, MASK].mean() - expected) < 0.1
    with pytest.raises(ValueError, match="num_classes"):
        generate(Denoiser(make_exact_apply(), params), **args)


def test_sharded_sampling_equals_single_device() -> None:
    """8 fake CPU devices (own process: the flag must be set before JAX starts) vs one device."""
    worker = Path(__file__).with_name("sharded_sampling_worker.py")
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(worker.parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(worker)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for sampler, r in result.items():
        assert r["max_diff_single"] <= 1e-6, (sampler, r)
        assert r["max_diff_batch"] <= 1e-6, (sampler, r)
        assert r["padded_zero"] and r["finite"] and r["std"] > 0.1, (sampler, r)


def test_batch_size_choice() -> None:
    assert choose_batch_size(10, 8) == 16  # the cohort, rounded up to the devices
    assert choose_batch_size(100_000, 8) == 8 * 4096  # the cap
    # Memory: half of 1 GB free over 1 MB a sample = 500 a device.
    assert choose_batch_size(100_000, 4, per_sample_bytes=10**6,
                             free_bytes_per_device=10**9) == 2000
    assert choose_batch_size(100_000, 2, per_sample_bytes=10**10, free_bytes_per_device=10**9) == 2
    # CPU has no memory limit to read: the host cap (or the cohort), not the accelerator's.
    assert auto_batch_size(make_exact_apply(), PARAMS, (G, K), num_samples=50,
                           mesh=make_mesh(1), guided=False) == 50
    assert auto_batch_size(make_exact_apply(), PARAMS, (G, K), num_samples=10_000,
                           mesh=make_mesh(1), guided=False) == HOST_BATCH_PER_DEVICE == 256
    per_sample = bytes_per_sample(make_exact_apply(), PARAMS, (64, 8), guided=True)
    assert per_sample is None or per_sample >= 64 * 8 * 4


# ----------------------------------------------------------------------------- labels


def test_label_strategies() -> None:
    names = ["AAA", "BBB", "CCC"]
    uniform = draw_labels("uniform", 100, class_names=names, seed=0)
    assert uniform.dtype == np.int32 and sorted(np.bincount(uniform)) == [33, 33, 34]
    np.testing.assert_array_equal(uniform, draw_labels("uniform", 100, class_names=names, seed=0))
    assert not np.array_equal(uniform, draw_labels("uniform", 100, class_names=names, seed=1))

    train = np.array([0] * 60 + [1] * 30 + [2] * 10)
    freq = draw_labels("train", 50, class_names=names, train_labels=train, seed=0)
    np.testing.assert_array_equal(np.bincount(freq, minlength=3), [30, 15, 5])

    counts = labels_from_spec("AAA=10, CCC=5", None, class_names=names)
    np.testing.assert_array_equal(np.bincount(counts, minlength=3), [10, 0, 5])
    with pytest.raises(InputError, match="sum to 15"):
        labels_from_spec("AAA=10,CCC=5", 20, class_names=names)
    with pytest.raises(InputError, match="unknown classes"):
        labels_from_spec("XXX=3", None, class_names=names)

    cases = labels_from_spec("case_rate=0.3067", 1000, class_names=["control", "case"], seed=3)
    assert np.bincount(cases).tolist() == [693, 307]
    with pytest.raises(InputError, match="named 'case'"):
        draw_labels("case_rate", 10, class_names=names, case_rate=0.5)

    assert labels_from_spec("train", 7, class_names=names, train_labels=train).size == 7
    assert np.bincount(labels_from_spec("uniform", 6, class_names=names)).tolist() == [2, 2, 2]
    assert {"uniform", "train", "counts", "case_rate"} <= set(LABEL_STRATEGIES)


def test_apportion_is_largest_remainder() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.random(rng.integers(1, 8))
        n = int(rng.integers(0, 500))
        counts = apportion(n, p)
        share = n * p / p.sum()
        assert counts.sum() == n and np.all(np.abs(counts - share) < 1)


# ----------------------------------------------------------------------------- calling


def test_round_calls_are_rint() -> None:
    d = np.array([[-0.3, 0.49, 0.51, 1.5, 2.7], [0.0, 1.0, 1.49, 2.0, 1.51]], np.float32)
    np.testing.assert_array_equal(call_genotypes(d, "round"),
                                  np.clip(np.rint(d), 0, 2).astype(np.int8))


def test_frequency_calls_match_the_decoded_frequency() -> None:
    rng = np.random.default_rng(0)
    n, s = 200, 300
    freq = rng.uniform(0.01, 0.6, s)
    # Decoded dosages shrink towards the mean, as a PCA reconstruction does.
    d = 0.4 * rng.binomial(2, freq, (n, s)) + 0.6 * 2 * freq + rng.normal(0, 0.1, (n, s))
    calls = call_genotypes(d.astype(np.float32), "frequency")
    assert calls.dtype == np.int8 and set(np.unique(calls)) <= {0, 1, 2}
    expected_af = np.clip(d, 0, 2).mean(0) / 2
    freq_err = np.abs(calls.mean(0) / 2 - expected_af)
    assert np.all(freq_err <= 0.5 / n)  # round(allele count) is off by <= 1/2 allele: 1/(4N)
    # Rounding loses the rare variants: a 5 % SNP decodes near 0.1 and rounds to 0.
    rounded_err = np.abs(call_genotypes(d, "round").mean(0) / 2 - expected_af)
    rare = freq < 0.1
    assert rounded_err[rare].mean() > 0.03 and rounded_err.mean() > 5 * freq_err.mean()
    # Homozygous ALT counts: the expectation under Binomial(2, d / 2), to 1.
    p = np.clip(d / 2, 0, 1)
    assert np.all(np.abs((calls == 2).sum(0) - np.square(p).sum(0)) <= 1)
    # By rank: within a variant, a higher dosage never gets a lower call (LD carried over).
    order = np.argsort(d, axis=0, kind="stable")
    assert np.all(np.diff(np.take_along_axis(calls, order, axis=0), axis=0) >= 0)
    n2, n1 = frequency_counts(d)
    assert np.all((n2 >= 0) & (n1 >= 0) & (n2 + n1 <= n))


def test_hybrid_calls_by_frequency_only_where_the_codec_keeps_the_variant() -> None:
    """One-SNP genes keep everything (frequency: the decoded AF, which rounding loses for rare
    SNPs); the SNPs of a 40-SNP gene cut to 8 components keep little (round: LD kept)."""
    rng = np.random.default_rng(3)
    n, s = 300, 60
    freq = np.concatenate([rng.uniform(0.02, 0.08, 20), rng.uniform(0.1, 0.5, 40)])
    x = rng.binomial(2, freq, (n, s)).astype(np.int8)
    assignment = genes.GeneAssignment.from_lists(
        [f"g{i}" for i in range(21)], [np.array([i]) for i in range(20)] + [np.arange(20, 60)])
    codec = GeneCodec.fit(x, assignment, gene_multiple=8)
    kept = codec.kept_variance_fraction() >= HYBRID_KEPT
    assert kept[:20].all() and not kept[20:].any()
    # A blurred model: dosages shrunk towards the mean, so the rare SNPs round to 0.
    d = (0.3 * x + 0.7 * x.mean(0) + rng.normal(0, 0.05, (n, s))).astype(np.float32)
    calls = call_genotypes(d, "hybrid", codec)
    residual = codec.residual_variance()
    assert np.all(residual[:20] < 1e-6) and np.all(residual[20:] > 0.05 * x[:, 20:].var(0))
    np.testing.assert_array_equal(calls[:, :20],
                                  frequency_calls(d[:, :20], residual=residual[:20]))
    np.testing.assert_array_equal(calls[:, 20:], call_genotypes(d[:, 20:], "round"))
    decoded_af = np.clip(d[:, :20], 0, 2).mean(0) / 2
    af_err = np.abs(calls[:, :20].mean(0) / 2 - decoded_af)
    rounded_err = np.abs(call_genotypes(d[:, :20], "round").mean(0) / 2 - decoded_af)
    assert af_err.max() <= 0.5 / n and rounded_err.mean() > 10 * af_err.mean()
    # Real people through the codec and back: where it is lossless, hybrid gives every genotype
    # back; frequency's Binomial(2, d / 2) count would turn a quarter of the heterozygotes'
    # expected dosage into homozygotes.
    back = codec.decode(codec.encode(x))
    np.testing.assert_array_equal(call_genotypes(back, "hybrid", codec)[:, :20], x[:, :20])
    hom = (call_genotypes(back[:, :20], "frequency") == 2).sum()
    assert hom > (x[:, :20] == 2).sum() + 10, (hom, (x[:, :20] == 2).sum())
    with pytest.raises(ValueError, match="hybrid calling needs the dataset's codec"):
        call_genotypes(d, "hybrid")
    with pytest.raises(ValueError, match="59 dosage columns, but the codec has 60 variants"):
        call_genotypes(d[:, 1:], "hybrid", codec)


# ----------------------------------------------------------------------------- writing


@pytest.fixture()
def tiny_codec():
    rng = np.random.default_rng(5)
    n, s = 60, 90
    freq = rng.uniform(0.05, 0.5, s)
    dosages = rng.binomial(2, freq, (n, s)).astype(np.int8)
    chrom = np.array(["1"] * 60 + ["2"] * 30)
    pos = np.concatenate([np.arange(60), np.arange(30)]) * 100 + 1000
    variants = io.Variants(chrom, pos.astype(np.int64), np.array([f"rs{i}" for i in range(s)]),
                           np.array(["A"] * s), np.array(["G"] * s))
    codec = GeneCodec.fit(dosages, genes.window_genes(variants, 12), gene_multiple=8)
    return codec, variants, dosages


@pytest.mark.parametrize("calling", ["round", "frequency", "hybrid"])
def test_write_cohort_of_features(tmp_path: Path, tiny_codec, calling: str) -> None:
    from bed_reader import open_bed
    from cyvcf2 import VCF

    codec, variants, dosages = tiny_codec
    rng = np.random.default_rng(1)
    features = codec.encode(dosages[:25]) + rng.normal(0, 0.3, (25, *codec.feature_shape))
    features[:, ~codec.mask] = 99.0  # junk in padded slots must not reach the genotypes
    labels = rng.integers(0, 2, 25).astype(np.int32)
    out = tmp_path / "synthetic"
    out.mkdir()
    (out / "stale.txt").write_text("replaced")
    table = CohortTable(variants, ["EUR", "AFR"], "super_pop")
    zeroed, calls = features_to_calls(features, codec, calling)

    def write(overwrite: bool) -> dict:
        return write_cohort(OutputSettings(out, overwrite, plink=True), table, labels, calls,
                            zeroed)

    with pytest.raises(InputError, match="did not write: choose another output path or pass"):
        write(False)  # a folder of someone else's files
    assert (out / "stale.txt").read_text() == "replaced"
    summary = write(True)
    assert summary["n_samples"] == 25 and not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]  # no temporary left

    expected = call_genotypes(codec.decode(np.where(codec.mask, features, 0)), calling, codec)
    vcf = VCF(str(out / "synthetic.vcf.gz"), gts012=True)
    assert vcf.samples == sample_ids(25) and vcf.samples[0] == "SYN000001"
    records = list(vcf)
    read = np.stack([r.gt_types for r in records], axis=1)
    np.testing.assert_array_equal(read, expected)
    assert [r.POS for r in records] == list(variants.pos)
    assert [r.CHROM for r in records] == list(variants.chrom)
    assert not any(r.gt_phases.any() for r in records)

    panel = tables.read_panel(out / "synthetic.panel")
    assert list(panel.samples) == sample_ids(25)
    np.testing.assert_array_equal(panel.columns["super_pop"], np.array(["EUR", "AFR"])[labels])

    with np.load(out / "features.npz") as z:
        np.testing.assert_array_equal(z["labels"], labels)
        assert np.all(z["features"][:, ~codec.mask] == 0)
        np.testing.assert_array_equal(z["features"][:, codec.mask],
                                      features[:, codec.mask].astype(np.float32))

    with open_bed(out / "synthetic.bed", count_A1=True) as bed:
        np.testing.assert_array_equal(bed.read(dtype="int8"), expected)
        assert list(bed.iid) == sample_ids(25) and list(bed.allele_1) == list(variants.alt)


def test_write_cohort_checks_its_inputs(tmp_path: Path, tiny_codec) -> None:
    codec, variants, _ = tiny_codec
    features = np.zeros((3, *codec.feature_shape), np.float32)
    with pytest.raises(ValueError, match="do not match the codec"):
        features_to_calls(features[:, 1:], codec)
    _, calls = features_to_calls(features, codec)
    table = CohortTable(variants, ["a", "b"], "pop")
    output = OutputSettings(tmp_path / "o")
    with pytest.raises(ValueError, match="labels must lie"):
        write_cohort(output, table, np.array([0, 1, 2]), calls)
    with pytest.raises(ValueError, match="2 labels"):
        write_cohort(output, table, np.array([0, 1]), calls)
    with pytest.raises(ValueError, match="variants"):
        write_cohort(output, table, np.array([0, 1, 1]), calls[:, 1:])
    assert not (tmp_path / "o").exists()


def test_cnn_sampling_with_its_cpu_compiler_options_matches_without() -> None:
    """The CNN's inference XLA options (YNNPACK for dots and elementwise only), passed to the
    compiled sampler, change speed, not the samples; an option this XLA does not know is dropped
    instead of failing the compile."""
    from genodiff_jax.models import build_model, inference_compiler_options
    from genodiff_jax.models.ops import xla

    model = build_model("cnn_unet", num_classes=2, base_channels=8, channel_mult=(1, 2),
                        num_res_blocks=1, attention_ds=(2,), num_heads=2, head_channels=4,
                        num_groups=4)
    G, K = 8, 4
    params = model.init({"params": jax.random.key(0)}, jnp.zeros((1, G, K)), jnp.zeros(1),
                        jnp.zeros(1, jnp.int32))["params"]
    # Zero-initialised outputs would hide a change.
    params = jax.tree.map(lambda p: p + 0.05, params)
    settings = SamplingSettings("ddim", 5, 0.5, seed=3, batch_size=4, mesh=make_mesh(1))
    args = dict(process=GaussianProcess("cosine", 50, "eps"), settings=settings,
                labels_N=np.array([0, 1, 1], np.int32), shape=(G, K), mask=np.ones((G, K), bool))
    options = inference_compiler_options(model)
    assert options is not None
    tuned = generate(Denoiser(model.apply, params, 2, options), **args)
    plain = generate(Denoiser(model.apply, params, 2), **args)
    np.testing.assert_allclose(tuned, plain, rtol=1e-4, atol=1e-5)
    assert np.abs(plain).max() > 0
    assert xla.accepted({"xla_cpu_no_such_option": "1"}) is None
