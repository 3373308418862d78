"""`--reference`: another implementation of the same model and train step, timed in the same run.

`REFERENCES` maps a `--reference` name to the class that builds the other side of one model's
measurement ("none": nothing). "torch" is the PyTorch twin of each gene-PCA denoiser and of our
train step (benchmarks/torch_reference.py, loaded from the repository checkout; torch is an
optional dependency, benchmarks/requirements-torch.txt), on the CPU with as many threads as the
process may use, like XLA's CPU backend. The timers call ours and the twin in turns, one of each per
round after the first call and the warm-up of both, so that both see the machine in the same state;
the only ratio reported is that side-by-side one, `ratio` = reference seconds / ours (above 1: ours
is faster). Figures taken on another day or machine are not compared with.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from genodiff_jax.bench.batch_search import resident_rows
from genodiff_jax.bench.examples import Example
from genodiff_jax.bench.models import LR_SCHEDULE_STEPS, BenchModel, model_fields
from genodiff_jax.errors import InputError

TORCH_TWINS = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_reference.py"
TORCH_REQUIREMENTS = "benchmarks/requirements-torch.txt"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), as XLA's CPU thread pool counts them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def torch_twins() -> ModuleType:
    """benchmarks/torch_reference.py, imported once, with torch set to `usable_cpus()` threads."""
    try:
        import torch
    except ImportError:
        raise InputError(None, "--reference torch needs PyTorch: pip install -r "
                         f"{TORCH_REQUIREMENTS}") from None
    if not TORCH_TWINS.is_file():
        raise InputError(TORCH_TWINS, "--reference torch needs the repository's benchmarks/ "
                         "folder beside the package")
    torch.set_num_threads(usable_cpus())
    name = "genodiff_torch_reference"
    spec = importlib.util.spec_from_file_location(name, TORCH_TWINS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


class TorchReference:
    """The PyTorch twin of one gene-PCA denoiser and of its train step; `check` runs before
    anything is measured (a model without a twin, bfloat16 compute, another backend, gradient
    accumulation, or a twin whose parameter count differs from ours are InputErrors). The twin
    is the published code's precision, float32 throughout; ours samples with its own weights
    dtype (`--weights-dtype`, auto: bfloat16 on CPUs that multiply it in hardware)."""

    name = "torch"

    def __init__(self, spec: BenchModel, model, example: Example, *, classes: int, seed: int,
                 params: int):
        self.twins = twins = torch_twins()
        if spec.name not in twins.TWINS:
            raise InputError(None, f"--reference torch: no PyTorch twin of {spec.name} (twins: "
                             f"{', '.join(sorted(twins.TWINS))})")
        self.spec, self.example, self.classes, self.seed = spec, example, classes, seed
        self.genes, self.components = example.row.shape
        self.fields = model_fields(model)
        self.params_ours = params
        self.params = twins.param_count(self._build())
        if self.params != params:
            raise InputError(None, f"--reference torch: the twin of {spec.name} has "
                             f"{self.params} parameters, ours {params}: not a twin "
                             f"({TORCH_TWINS.name} and genodiff_jax/models/ differ)")

    @classmethod
    def check(cls, spec: BenchModel, *, backend: str, dtype: str) -> None:
        if dtype != "float32":
            raise InputError(None, f"--reference torch compares float32 models; --dtype is "
                             f"{dtype}")
        if backend != "cpu":
            raise InputError(None, f"--reference torch runs the twin on torch's CPU; JAX runs on "
                             f"{backend} here")
        if int(spec.config.train.grad_accum_steps) != 1:
            raise InputError(None, "--reference torch: the twin's train step has no gradient "
                             "accumulation (train.grad_accum_steps must be 1)")

    def _build(self):
        try:
            return self.twins.build_twin(self.spec.name, self.fields, genes=self.genes,
                                         components=self.components, num_classes=self.classes)
        except (TypeError, ValueError) as e:
            raise InputError(None, f"--reference torch: {self.spec.name}: {e}") from e

    def as_json(self) -> dict:
        import torch

        return {"impl": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                "twin": "benchmarks/torch_reference.py", "params": self.params,
                "params_ours": self.params_ours, "params_equal": self.params == self.params_ours}

    def _recipe(self):
        c, process = self.spec.config, self.spec.process
        schedule = process.train_schedule
        T = schedule.num_steps
        return self.twins.Recipe(
            alpha_T=np.asarray(schedule.alpha), sigma_T=np.asarray(schedule.sigma),
            model_time_T=np.asarray(jax.device_get(process.model_time(jnp.arange(T)))),
            prediction=process.prediction, p_uncond=float(c.train.p_uncond),
            ema_decay=float(c.train.ema_decay), learning_rate=float(c.optim.learning_rate),
            b1=float(c.optim.b1), b2=float(c.optim.b2), eps=float(c.optim.eps),
            weight_decay=float(c.optim.weight_decay),
            clip_grad_norm=float(c.optim.clip_grad_norm),
            warmup_steps=int(c.optim.warmup_steps), total_steps=LR_SCHEDULE_STEPS,
            end_lr_factor=float(c.optim.end_lr_factor))

    def train_step(self, batch: int) -> Callable[[], Any]:
        """The twin's train step at `batch` on the rows ours trains on (same seed): a callable
        with `last_loss` after each call."""
        rng = np.random.default_rng(self.seed)  # as bench_train draws ours
        rows = resident_rows(batch)
        data = self.example.data(rng, rows)
        labels = rng.integers(0, self.classes, rows)
        return self.twins.TrainStep(self._build(), self._recipe(), data_NxGxK=data,
                                    labels_N=labels, mask_GxK=self.example.mask, batch=batch,
                                    num_classes=self.classes, seed=self.seed)

    def forward(self, batch: int) -> Callable[[], Any]:
        """One twin call at `batch` on ours's inputs, parameters from N(0, 0.02^2) like ours."""
        rng = np.random.default_rng(self.seed + 2)  # as bench_forward draws ours
        x = self.example.model_input(rng, batch)
        t = rng.random(batch, np.float32)
        y = rng.integers(0, self.classes, batch)
        model = self.twins.randomise(self._build(), self.seed)
        return self.twins.Forward(model, x, t, y)


# --reference name -> the class that builds the other side of a model's measurement.
REFERENCES: dict[str, type[TorchReference] | None] = {"none": None, "torch": TorchReference}

