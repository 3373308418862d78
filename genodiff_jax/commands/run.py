"""`genodiff run`: the whole pipeline on the embedded cohort, as one library function.

Simulate the cohort, prepare it, train and sample the gene-PCA family, the masked family and the
panel family (each of the last two unless its config is None), and score them in one report.
Every stage writes its own folder under `out` (cohort, data, train, synthetic, train_masked,
synthetic_masked, train_panel, synthetic_panel, report); a rerun resumes training where the work
dirs hold checkpoints and replaces the outputs it wrote before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from genodiff_jax.commands.sample import sample_cohort
from genodiff_jax.eval.report import evaluate
from genodiff_jax.eval.sections import EvalSettings
from genodiff_jax.sampling.settings import OutputSettings, SamplingSettings


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The cohort preset and label, the families' configs (`masked_config` / `panel_config`
    None: no such family), how the gene-PCA model samples and what the report runs."""

    preset: str = "demo"
    label: str = "pop"
    config: str = "experiments/demo.py"
    masked_config: str | None = "experiments/demo_masked.py"
    sampling: SamplingSettings = SamplingSettings("dpmpp", 50)
    evaluation: EvalSettings = EvalSettings()
    panel_config: str | None = "experiments/demo_panel.py"


def stop_line(trained: dict) -> str | None:
    """Why training stopped (converged, time cap, step cap), or had stopped before."""
    stop = trained.get("stop")
    return stop["message"] if isinstance(stop, dict) and stop.get("message") else None


def run_pipeline(out: Path, settings: RunSettings = RunSettings(), *, overwrite: bool = False,
                 progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Every stage of the module docstring into `out`; `log` gets one line per stage. Returns
    {"report": the report, "folders": {name: path}}."""
    from genodiff_jax.data.prepare import PrepareSettings, format_summary, prepare_dataset
    from genodiff_jax.data.simulate import PRESETS, simulate_cohort
    from genodiff_jax.train.loop import run_training

    out = Path(out)
    files = simulate_cohort(out / "cohort", PRESETS[settings.preset], overwrite=overwrite,
                            progress=progress)
    summary = prepare_dataset(files.vcf, files.panel, out / "data",
                              PrepareSettings(files.bed, label=settings.label),
                              overwrite=overwrite, progress=progress)
    log(format_summary(summary))
    n = summary["n_samples"]

    def train(workdir: str, config: str) -> dict:
        trained = run_training(out / "data", out / workdir, config, progress=progress)
        if stop_line(trained):
            log(stop_line(trained))
        return trained

    trained = train("train", settings.config)
    log(f"trained: step {trained.get('step')}, loss {trained.get('loss')}, "
        f"val_recon {trained.get('val_recon')}")
    sampled = sample_cohort(out / "train", OutputSettings(out / "synthetic", overwrite), n,
                            settings.sampling, labels="train", progress=progress)
    log(f"sampled {sampled['n']} people with {sampled['sampler']} ({sampled['steps']} steps) in "
        f"{sampled['sampling_seconds']} s -> {out / 'synthetic'}")
    cohorts = {"gene_pca": out / "synthetic"}
    folders = ["cohort", "data", "train", "synthetic"]
    for family, config in (("masked", settings.masked_config), ("panel", settings.panel_config)):
        if config is None:
            continue
        trained = train(f"train_{family}", config)
        log(f"trained the {family} family: step {trained.get('step')}, "
            f"val_bits {trained.get('val_bits')}")
        sampled = sample_cohort(out / f"train_{family}",
                                OutputSettings(out / f"synthetic_{family}", overwrite), n,
                                labels="train", progress=progress)
        log(f"sampled {sampled['n']} people ({sampled['steps']} unmasking steps) in "
            f"{sampled['sampling_seconds']} s -> {out / f'synthetic_{family}'}")
        cohorts[family] = out / f"synthetic_{family}"
        folders += [f"train_{family}", f"synthetic_{family}"]
    report = evaluate(out / "data", cohorts, out / "report", settings.evaluation,
                      overwrite=overwrite)
    return {"report": report, "folders": {name: out / name for name in [*folders, "report"]}}
