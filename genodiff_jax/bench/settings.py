"""What a benchmark measures and at which size (`BenchSettings`), and the checks on its flags."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from jax.sharding import Mesh

from genodiff_jax.bench.batch_search import memory_budget
from genodiff_jax.bench.models import BenchModel
from genodiff_jax.bench.projection import CHROMOSOME_SNPS, PEOPLE_1KG, devices_named
from genodiff_jax.bench.reference import REFERENCES
from genodiff_jax.errors import InputError

SECTIONS = ("train", "forward", "sample")


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What to measure and at which size; `batch` None: the config's train.batch_size (or 32).

    Shapes: `genes`/`components` for the features family (None: 2048 x 8), `window` for the tokens
    family (None: the config's diffusion.window); a shape field no measured model takes is an
    error."""

    genes: int | None = None
    components: int | None = None
    window: int | None = None
    classes: int = 26
    batch: int | str | None = None  # "max": the largest train batch that fits
    memory_limit_gb: float | None = None  # per device, for --batch max; None: the device's own
    dtype: str | None = None  # None: the config's model.dtype (float32 for --model)
    weights_dtype: str = "auto"  # weight matrices in the forward and sample sections (auto:
    # bfloat16 on CPUs that multiply it in hardware, models.weights_dtype)
    repeats: int = 5
    warmup: int = 2
    what: tuple[str, ...] = ("train", "forward")
    samplers: tuple[str, ...] = ("ancestral",)
    sampler_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # every sampler's
    steps: int = 25
    n: int = 256
    guidance: float | None = None  # None: the config's sampling.guidance
    sample_batch: int | None = None  # None: chosen from free device memory, as `genodiff sample`
    peak_tflops: float | None = None  # per device; None: from PEAK_TFLOPS by device kind
    num_devices: int = 0  # 0: all
    seed: int = 0
    reference: str = "none"  # another implementation timed beside ours (bench/reference.py)
    project: tuple[str, ...] = ()  # devices to project onto (bench/projection.py), none: no block
    project_people: int = PEOPLE_1KG  # the cohort a projection samples (and splits for training)
    project_snps: int = CHROMOSOME_SNPS  # the chromosome a token model's projection covers

    def as_json(self) -> dict:
        return {**dataclasses.asdict(self), "what": list(self.what), "project": list(self.project),
                "samplers": list(self.samplers), "sampler_options": dict(self.sampler_options)}


def parse_batch(text: str | int | None) -> int | str | None:
    """--batch: a positive integer, or "max"."""
    if text is None or text == "max" or isinstance(text, int):
        return text
    try:
        return int(text)
    except ValueError:
        raise InputError(None, f"--batch must be an integer or max, got {text!r}") from None


def _check_sizes(s: BenchSettings, batch: int | str) -> None:
    sized = [] if batch == "max" else [("--batch", batch, 1)]
    for flag, value, least in (("--genes", s.genes, 1), ("--components", s.components, 1),
                               ("--window", s.window, 1), ("--classes", s.classes, 1), *sized,
                               ("--repeats", s.repeats, 1), ("--warmup", s.warmup, 0),
                               ("--n", s.n, 1), ("--project-people", s.project_people, 1),
                               ("--project-snps", s.project_snps, 1)):
        if value is not None and value < least:
            raise InputError(None, f"{flag} must be >= {least}, got {value}")
    if s.sample_batch is not None and s.sample_batch < 1:
        raise InputError(None, f"--sample-batch must be >= 1, got {s.sample_batch}")
    for flag, value in (("--peak-tflops", s.peak_tflops), ("--memory-limit-gb", s.memory_limit_gb)):
        if value is not None and not value > 0:
            raise InputError(None, f"{flag} must be > 0, got {value}")


def _check_sampling(s: BenchSettings, spec: BenchModel) -> None:
    """Samplers the process has, options each of them takes, steps within the process's range."""
    samplers = spec.process.samplers
    unknown = [x for x in s.samplers if x not in samplers]
    if unknown or not s.samplers:
        raise InputError(None, f"unknown sampler {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(sorted(samplers))}")
    for sampler in s.samplers:
        try:
            spec.process.sampler_options(sampler, s.sampler_options)
        except ValueError as e:
            raise InputError(None, f"--sampler-options: {e}") from e
    try:
        spec.process.check_steps(s.steps)
    except ValueError as e:
        raise InputError(None, f"--steps: {e}") from e


def check_settings(s: BenchSettings, spec: BenchModel, batch: int | str, mesh: Mesh) -> None:
    """InputError for any flag that would fail `spec`'s run, before anything is measured."""
    bad = [w for w in s.what if w not in SECTIONS]
    if bad or not (s.what or s.project):  # --project alone measures nothing
        raise InputError(None, f"--what: unknown section {', '.join(bad) or '(none)'}; "
                         f"known: {', '.join(SECTIONS)}")
    if s.reference not in REFERENCES:
        raise InputError(None, f"--reference must be one of {', '.join(REFERENCES)}, got "
                         f"{s.reference!r}")
    if spec.dtype not in ("float32", "bfloat16"):
        raise InputError(None, f"dtype must be float32 or bfloat16, got {spec.dtype!r}")
    _check_sizes(s, batch)
    if s.project:
        devices_named(s.project)
    if batch == "max":
        memory_budget(s.memory_limit_gb, mesh)  # raises where the budget is unknown
    elif batch % mesh.size:
        raise InputError(None, f"--batch {batch} must be a multiple of the {mesh.size} devices")
    if "sample" in s.what:
        _check_sampling(s, spec)
