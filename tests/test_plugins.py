"""A research fork's view: a noise schedule with a hyper-parameter, a sampler with an option and an
evaluation section, each written and registered in this file alone, run train -> sample ->
evaluate through the public entry points with nothing else edited."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax import cli
from genodiff_jax.commands.sample import sample_cohort
from genodiff_jax.data import tables
from genodiff_jax.diffusion import SCHEDULES, betas_from_alpha_bar, register_schedule
from genodiff_jax.diffusion.gaussian_samplers import (
    SAMPLERS,
    predict_x0_eps,
    register_sampler,
    step_coefs,
)
from genodiff_jax.eval.report import EvalSettings, evaluate, summary_header, summary_rows
from genodiff_jax.eval.sections import SECTIONS, Section
from genodiff_jax.sampling.settings import OutputSettings
from genodiff_jax.train import load_trained, run_training

SEEN: dict[str, list] = {"schedule": [], "sampler": []}


def power_cosine(num_steps: int, power: float = 1.0) -> np.ndarray:
    """abar(u) = cos(pi/2 u)^(2 power): `power` stretches the cosine schedule's noise levels."""
    SEEN["schedule"].append(power)
    return betas_from_alpha_bar(lambda u: np.cos(math.pi / 2 * u) ** (2 * power), num_steps)


def damped_ddim(denoise_fn, schedule, key, x_T, ts, *, prediction, mask=None, clip_x0=None,
                damping: float = 1.0):
    """Deterministic DDIM whose x0 estimate is scaled by `damping` (a toy option)."""
    del key
    SEEN["sampler"].append(damping)

    def step(x_t, xs):
        t, s = xs
        c = step_coefs(schedule, t, s)
        x0_hat, eps_hat = predict_x0_eps(denoise_fn, prediction, x_t, c, mask=mask,
                                         clip_x0=clip_x0)
        return (c.alpha_s * damping * x0_hat + c.sigma_s * eps_hat).astype(x_t.dtype), None

    ts = jnp.asarray(ts, jnp.int32)
    s = jnp.concatenate([ts[1:], jnp.full((1,), -1, jnp.int32)])
    x_0, _ = jax.lax.scan(step, x_T, (ts, s))
    return x_0


def mean_af(ctx) -> dict:
    """Mean allele frequency of each generator's calls."""
    return {name: float(gen.calls.mean() / 2) for name, gen in ctx.generators.items()}


@pytest.fixture()
def plugins():
    register_schedule("power_cosine")(power_cosine)
    register_sampler("damped_ddim")(damped_ddim)
    SECTIONS.register("mean_af", Section(compute=mean_af,
                                         columns=[("mean AF", lambda r, g: r[g])]))
    yield
    del SCHEDULES["power_cosine"], SAMPLERS["damped_ddim"], SECTIONS["mean_af"]


def test_a_schedule_a_sampler_and_a_section_from_one_file(plugins, small_cohort, tmp_path):
    data, work, out = tmp_path / "data", tmp_path / "train", tmp_path / "synthetic"
    assert cli.main(["prepare", "--quiet", "--vcf", str(small_cohort["vcf"]), "--panel",
                     str(small_cohort["panel"]), "--genes", str(small_cohort["bed"]),
                     "--out", str(data)]) == 0
    # Config keys only: the schedule and its hyper-parameter, the sampler and its option.
    run_training(data, work, "experiments/demo.py:smoke", progress=False, overrides={
        "diffusion.schedule": "power_cosine", "diffusion.schedule_kwargs": {"power": 2.0},
        "sampling.sampler": "damped_ddim", "sampling.steps": 5,
        "sampling.options": {"damping": 0.5, "clip_x0": "data"}})
    assert SEEN["schedule"] and set(SEEN["schedule"]) == {2.0}
    schedule = load_trained(work).process.train_schedule
    u = np.arange(1, 51) / 50
    np.testing.assert_allclose(np.asarray(schedule.alpha_bar)[:-1],
                               (np.cos(math.pi / 2 * u) ** 4)[:-1], rtol=1e-4)

    summary = sample_cohort(work, OutputSettings(out), 20, labels="train", progress=False)
    assert summary["sampler"] == "damped_ddim" and summary["steps"] == 5
    assert summary["sampler_options"]["damping"] == 0.5 and SEEN["sampler"] == [0.5]
    features = np.load(out / "features.npz")["features"]
    assert features.shape[0] == 20 and np.isfinite(features).all()

    report = evaluate(data, out, tmp_path / "report",
                      EvalSettings(sections=("fidelity", "mean_af"), max_nnaa=50))
    assert summary_header(report)[-1] == "mean AF"
    rows = {row[0]: row[-1] for row in summary_rows(report)}
    assert rows["train_copies"] == pytest.approx(report["mean_af"]["train_copies"])
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert set(saved["mean_af"]) == set(report["generators"])
    assert "mean AF" in (tmp_path / "report" / "report.html").read_text()


@pytest.fixture()
def third_family():
    import third_family

    third_family.register()
    yield third_family
    third_family.unregister()


def test_a_third_family_from_one_file(third_family, small_cohort, tmp_path):
    """Issue 28: independent sites as a family of its own (process, view, denoiser and family
    entry registered by tests/third_family.py alone) trains, samples and is evaluated through
    the public entry points; its cohort carries each population's allele frequencies."""
    data, work, out = tmp_path / "data", tmp_path / "train", tmp_path / "synthetic"
    assert cli.main(["prepare", "--quiet", "--vcf", str(small_cohort["vcf"]), "--panel",
                     str(small_cohort["panel"]), "--genes", str(small_cohort["bed"]),
                     "--out", str(data)]) == 0
    trained = run_training(data, work, "tests/third_family.py", progress=False)
    assert trained["step"] == 60 and np.isfinite(trained["val_bits"])
    summary = sample_cohort(work, OutputSettings(out), 400, labels="train", progress=False)
    assert summary["sampler"] == "ancestral" and summary["steps"] == 2 and summary["phased"]
    assert "calling" not in summary
    from cyvcf2 import VCF

    vcf = VCF(str(out / "synthetic.vcf.gz"))
    haps = np.stack([r.genotype.array()[:, :2] for r in vcf], axis=1)  # [N, S, 2]
    names = tables.read_panel(out / "synthetic.panel").columns["pop"]
    truth = small_cohort["haps"].mean(axis=2)
    pops = np.repeat(["AAA", "BBB", "CCC", "DDD"], 10)
    for pop in ("AAA", "DDD"):  # each population's own frequencies, not the pooled ones
        af = haps[names == pop].mean(axis=(0, 2))
        own = np.corrcoef(af, truth[pops == pop].mean(axis=0))[0, 1]
        other = np.corrcoef(af, truth[pops != pop].mean(axis=0))[0, 1]
        assert own > 0.6 and own > other + 0.2, (pop, own, other)

    report = evaluate(data, out, tmp_path / "report", EvalSettings(sections=("fidelity",),
                                                                    max_nnaa=50))
    assert "model" in report["generators"]
    assert report["fidelity"]["model"]["af"]["per_population_mean_r"] > 0.85  # 0.916 measured
