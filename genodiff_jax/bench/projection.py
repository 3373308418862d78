"""`--project h100,h200`: what one GPU would take, until one is lent: roofline lower bounds from
the programs XLA compiles on this machine.

For each model, compiled on abstract inputs for one device of this backend (nothing allocated),
in bfloat16 unless `--dtype` says otherwise:
- the real train step at the recipe's batch (or `--batch N`), as `--batch max` compiles it;
- one sampling step: the denoiser call (`train=False`, as the forward section jits it) on the
  whole cohort, `--project-people` (2504, 1000 Genomes) rows, or
  twice that when guided (the conditional and unconditional halves go in one call).

XLA's cost analysis gives FLOPs and bytes accessed per call, its memory analysis the bytes a device
holds (`planned_bytes`); on CPU both programs skip YNNPACK's library fusions
(`CPU_ANALYSIS_OPTIONS`), whose work the cost analysis partly misses. On each device of `DEVICES`
a step takes at least max(FLOPs / peak FLOP/s, bytes / HBM bandwidth) (`roofline_seconds`):
compute and memory traffic overlapped perfectly, both at their peaks, no launch or host overhead.
So every time here is a LOWER bound for these FLOPs and bytes, and a projection, not a
measurement. Caveats: the FLOPs carry over to a GPU, but bytes accessed and memory follow the CPU
backend's fusion (a GPU fuses differently, e.g. attention without materialising its scores, so
they are estimates, here likely high), and the CPU may keep some bfloat16 work in float32; the
sampler's own update of x_t between calls is not counted. The largest train batch that fits a
device's memory uses `largest_train_batch` with that memory as the limit (GB = 1e9 bytes,
converted to the GiB it takes), FIT_FRACTION of it usable.

What the times are set against is the family's (`Family.bench_workloads`): for gene
features the project's goals (the paper's training, 2504 people x 500 ancestral or 25 DPM-Solver++
steps); for genotype tokens the rates and a chromosome of `--project-snps` SNPs in windows.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from genodiff_jax.bench.batch_search import (
    FIT_FRACTION,
    MAX_BATCH_PER_DEVICE,
    compile_train_step,
    largest_train_batch,
)
from genodiff_jax.bench.examples import Example
from genodiff_jax.bench.machine import (
    bytes_accessed_per_device,
    flops_per_device,
    peak_tflops,
    planned_bytes,
)
from genodiff_jax.bench.models import BenchModel, build_denoiser, jit_forward
from genodiff_jax.data.prepare import TEST_FRACTION
from genodiff_jax.errors import InputError
from genodiff_jax.families import family_of
from genodiff_jax.models.ops.xla import accepted
from genodiff_jax.sharding import make_mesh
from genodiff_jax.train.config import num_train_steps, sampling_defaults
from genodiff_jax.train.state import abstract_params

# XLA's CPU backend hands dots and elementwise graphs to YNNPACK as custom fusions, whose work
# the cost analysis partly misses (a tiny MLP U-Net's train step came out 5 % short at batch 32
# and not at 24 or 40). The programs analysed here go through XLA's own pipeline instead.
CPU_ANALYSIS_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
PROJECTION_DTYPE = "bfloat16"  # compute dtype unless --dtype; the peak is looked up for it
PEOPLE_1KG = 2504  # 1000 Genomes phase 3: the cohort sampled, and split for training
# A chromosome for the masked family's projection (--project-snps): a round assumption of the
# order of a small human chromosome in 1000 Genomes phase 3 (chr22 holds about a million
# variants), not a count from a file.
CHROMOSOME_SNPS = 1_000_000



@dataclasses.dataclass(frozen=True)
class Device:
    """An accelerator to project onto. The peak comes from `machine.PEAK_TFLOPS` by `kind` (the
    device_kind JAX reports for it), so it is written once."""

    name: str
    kind: str
    hbm_tb_per_s: float  # HBM bandwidth, 1e12 bytes/s
    memory_gb: float  # HBM, 1e9 bytes

    def peak_tflops(self, dtype: str) -> float:
        peak = peak_tflops(self.kind, dtype)
        if peak is None:
            raise InputError(None, f"--project: no {dtype} peak known for {self.name}")
        return peak

    @property
    def memory_limit_gib(self) -> float:
        """`memory_gb` in the GiB (2**30 bytes) that `--memory-limit-gb` is given in."""
        return self.memory_gb * 1e9 / 2**30

    def as_json(self, dtype: str) -> dict:
        return {"name": self.name, "peak_tflops": self.peak_tflops(dtype), "dtype": dtype,
                "hbm_tb_per_s": self.hbm_tb_per_s, "memory_gb": self.memory_gb}


# Vendor figures (dense: NVIDIA's sheets quote bf16 with 2:4 sparsity, 1,979 TFLOP/s for both,
# halved in machine.PEAK_TFLOPS, whose comment cites the tabulations used):
# - H100 SXM5: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100): 80 GB
#   HBM3 at 3.35 TB/s;
# - H200 SXM: NVIDIA H200 Tensor Core GPU product page and datasheet
#   (nvidia.com/en-us/data-center/h200): 141 GB HBM3e at 4.8 TB/s, the H100's compute.
DEVICES: dict[str, Device] = {
    "h100": Device("NVIDIA H100 SXM5 80GB", "NVIDIA H100 80GB HBM3", 3.35, 80.0),
    "h200": Device("NVIDIA H200 SXM 141GB", "NVIDIA H200", 4.8, 141.0),
}


def devices_named(names: Sequence[str]) -> dict[str, Device]:
    """--project: registered device names; InputError naming the known ones otherwise."""
    unknown = [n for n in names if n not in DEVICES]
    if unknown or not names:
        raise InputError(None, f"--project: unknown device {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(DEVICES)}")
    return {n: DEVICES[n] for n in names}


def roofline_seconds(flops: float, bytes_accessed: float, peak_tflops: float,
                     hbm_tb_per_s: float) -> float:
    """The least time a call can take: its FLOPs at the peak rate or its bytes at the memory
    bandwidth, whichever is longer (perfect overlap of the two)."""
    return max(flops / (peak_tflops * 1e12), bytes_accessed / (hbm_tb_per_s * 1e12))


def train_people(people: int, test_fraction: float = TEST_FRACTION) -> int:
    """The training split of `people`: `genodiff prepare` holds out ceil(test_fraction x people)
    (scikit-learn's train_test_split rounding), so 2253 of 2504."""
    return people - math.ceil(test_fraction * people)


@dataclasses.dataclass(frozen=True)
class Cost:
    """What XLA says one compiled call costs on one device."""

    flops: float
    bytes_accessed: float
    memory_bytes: int | None  # planned: arguments + outputs + temporaries - donated

    @classmethod
    def of(cls, compiled: Any, what: str) -> Cost:
        flops, moved = flops_per_device(compiled), bytes_accessed_per_device(compiled)
        if flops is None or moved is None:
            raise InputError(None, f"--project: XLA gives no cost analysis of {what} on "
                             f"{jax.default_backend()}")
        return cls(flops, moved, planned_bytes(compiled))

    def on(self, device: Device, dtype: str) -> dict:
        """Roofline seconds on `device`, its two terms, and which one bounds it."""
        peak = device.peak_tflops(dtype)
        compute_s = roofline_seconds(self.flops, 0.0, peak, device.hbm_tb_per_s)
        memory_s = roofline_seconds(0.0, self.bytes_accessed, peak, device.hbm_tb_per_s)
        return {"seconds": max(compute_s, memory_s), "compute_s": compute_s, "memory_s": memory_s,
                "bound": "compute" if compute_s >= memory_s else "memory"}

    def as_json(self) -> dict:
        return {"flops": self.flops, "bytes_accessed": self.bytes_accessed,
                "memory_bytes_per_device": self.memory_bytes}


# -- what the times are set against: the family's workloads ---------------------------------------

@dataclasses.dataclass(frozen=True)
class Steps:
    """A model's projected step times on one device (`Cost.on`), and what they are at: what a
    family's `bench_workloads` sets its workloads from."""

    spec: BenchModel
    example: Example
    people: int  # sampled, and split for training
    snps: int  # --project-snps
    batch: int  # train batch
    train: dict  # one train step: {"seconds", "compute_s", "memory_s", "bound"}
    sample: dict  # one sampling step (every call of it), likewise

    def times(self, count: int, step: str, goal_s: float | None = None, **fields) -> dict:
        """`count` steps of `step` ("train" or "sample"): the roofline seconds and their compute
        term (the FLOPs alone at peak), against `goal_s` where there is one."""
        one = {"train": self.train, "sample": self.sample}[step]
        out = {**fields, "seconds": count * one["seconds"], "compute_s": count * one["compute_s"]}
        if goal_s is not None:
            out.update(goal_s=goal_s, meets_goal=out["seconds"] < goal_s)
        return out

    def training(self, rows_per_person: int = 1) -> dict:
        """The config's training (train.num_steps, else its epochs over the training split)."""
        c = self.spec.config
        people = train_people(self.people)
        steps = num_train_steps(self.batch, int(c.train.num_steps), float(c.train.num_epochs),
                                people * rows_per_person)
        return {"people": people, "epochs": float(c.train.num_epochs),
                "num_steps": int(c.train.num_steps), "batch": self.batch, "steps": steps}


# -- one model -------------------------------------------------------------------------------------

def analysis_options() -> dict[str, str] | None:
    """The XLA options the analysed programs compile with on this backend (None: its defaults)."""
    return accepted(CPU_ANALYSIS_OPTIONS) if jax.default_backend() == "cpu" else None


def compile_sampling_call(model, example: Example, rows: int, mesh) -> Any:
    """One denoiser call at `rows`, on abstract inputs of the dtypes the sampler hands it, with
    the float32 trained weights (what `--weights-dtype auto` samples with on an accelerator)."""
    one = example.model_input(np.random.default_rng(0), 1)  # one host row, for its dtypes
    x = jax.tree.map(lambda a: jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype), one)
    t = jax.ShapeDtypeStruct((rows,), np.float32)
    y = jax.ShapeDtypeStruct((rows,), np.int32)
    params = abstract_params(model, example.row)
    return jit_forward(model, mesh, analysis_options()).lower(params, x, t, y).compile()


def _largest_batch(spec: BenchModel, example: Example, classes: int, device: Device, mesh,
                   compiled_at: Callable[[int], Any]) -> dict:
    try:
        batch, search = largest_train_batch(spec, example, classes=classes,
                                            memory_limit_gb=device.memory_limit_gib, mesh=mesh,
                                            compiled_at=compiled_at)
    except InputError as e:  # not even the smallest batch fits
        return {"batch": None, "memory_gb": device.memory_gb, "why": str(e)}
    return {"batch": batch, "at_search_cap": batch >= MAX_BATCH_PER_DEVICE,
            "memory_gb": device.memory_gb, "fit_fraction": FIT_FRACTION, **search}


def _costs(cost: Cost) -> str:
    memory = "?" if cost.memory_bytes is None else f"{cost.memory_bytes / 1e9:.3g}"
    return (f"{cost.flops / 1e9:.4g} GFLOP, {cost.bytes_accessed / 1e9:.4g} GB accessed, "
            f"{memory} GB held")


def _summary(name: str, device: str, dtype: str, block: dict) -> str:
    def seconds(x: float) -> str:
        return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.4g} s"

    parts = [f"train step {seconds(block['train_step']['seconds'])} "
             f"({block['train_step']['bound']}-bound)",
             f"sampling step {seconds(block['sampling_step']['seconds'])} "
             f"({block['sampling_step']['bound']}-bound)",
             f"largest train batch {block['largest_train_batch']['batch']}"]

    def walk(prefix: str, tree: Mapping) -> None:
        for key, value in tree.items():
            if isinstance(value, Mapping) and "seconds" in value:
                goal = (f" (goal < {value['goal_s']:g} s: "
                        f"{'met' if value['meets_goal'] else 'NOT met'})" if "goal_s" in value
                        else "")
                parts.append(f"{prefix}{key} {seconds(value['seconds'])} (FLOPs alone "
                             f"{seconds(value['compute_s'])}){goal}")
            elif isinstance(value, Mapping):
                walk(f"{prefix}{key} ", value)
    walk("", block["workloads"])
    return f"{name} on {device}, {dtype}, roofline lower bound: " + "; ".join(parts)


def project(spec: BenchModel, example: Example, s, devices: Mapping[str, Device], *,
            log: Callable[[str], None] | None = None) -> dict:
    """The `projection` block of one model's entry: its train and sampling steps' costs from the
    programs compiled here, and on each of `devices` the roofline times, the largest train batch
    that fits and the family's workloads (`Family.bench_workloads`). `s`: the BenchSettings."""
    say = log or (lambda _msg: None)
    t0 = time.perf_counter()
    dtype = s.dtype or PROJECTION_DTYPE
    spec = spec.with_dtype(dtype)
    model = build_denoiser(spec, s.classes)
    mesh = make_mesh(1)  # one device: what the times are for
    batch = s.batch if isinstance(s.batch, int) else spec.batch
    compiled_at = functools.cache(functools.partial(
        compile_train_step, spec, example, classes=s.classes, mesh=mesh,
        compiler_options=analysis_options()))
    say(f"{spec.name}: projection: train step at batch {batch}, {example.label}, {dtype}")
    train = Cost.of(compiled_at(batch), "the train step")
    w = float(sampling_defaults(spec.config)["guidance"] if s.guidance is None else s.guidance)
    calls = 2 if w != 0.0 else 1
    rows = calls * s.project_people
    say(f"{spec.name}: projection: sampling step, one call at {rows} rows")
    sample = Cost.of(compile_sampling_call(model, example, rows, mesh), "the sampling call")
    say(f"{spec.name}: projection: a train step {_costs(train)}; a sampling step ({calls} "
        f"call{'s' if calls > 1 else ''} of {s.project_people} rows) {_costs(sample)}")
    out = {
        "basis": "a projection, not a measurement: the roofline max(FLOPs / peak FLOP/s, "
                 "bytes accessed / HBM bandwidth), compute and memory traffic overlapped "
                 "perfectly at their peaks, a lower bound on time for these FLOPs and bytes "
                 "(compute_s: the FLOPs alone). FLOPs, bytes and memory from XLA's analysis of "
                 f"the programs compiled for {jax.default_backend()}: the FLOPs carry over to a "
                 "GPU; bytes accessed and memory follow this backend's fusion (a GPU's differs, "
                 "e.g. attention without materialised scores), so they are estimates",
        "compute_dtype": dtype, "sampling_weights_dtype": "float32",
        "xla_options": analysis_options(),
        "train": {"batch": batch, **train.as_json()},
        "sampling_step": {"people": s.project_people, "guidance": w, "model_calls": calls,
                          "call_batch": rows, **sample.as_json()},
        "devices": {},
    }
    for name, device in devices.items():
        say(f"{spec.name}: projection: the largest train batch within {FIT_FRACTION:g} x "
            f"{device.memory_gb:g} GB ({name})")
        train_on, sample_on = train.on(device, dtype), sample.on(device, dtype)
        steps = Steps(spec, example, s.project_people, s.project_snps, batch, train_on,
                      sample_on)
        block = out["devices"][name] = {
            "device": device.as_json(dtype), "train_step": train_on, "sampling_step": sample_on,
            # else the cohort is sampled in several batches, at about the same total cost
            "sampling_call_fits": (sample.memory_bytes is not None
                                   and sample.memory_bytes <= device.memory_gb * 1e9),
            "largest_train_batch": _largest_batch(spec, example, s.classes, device, mesh,
                                                  compiled_at),
            "workloads": family_of(spec.process).bench_workloads(steps)}
        say(_summary(spec.name, name, dtype, block))
    out["compile_and_search_s"] = time.perf_counter() - t0
    return out
