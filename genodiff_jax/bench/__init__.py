"""Speed as a measured, reproducible property: `genodiff bench`.

For a denoiser at one example's shape (features [genes, K], or tokens [H, window] with their
pos/af context: `examples`, by the process's representation), a batch and a compute dtype, three
sections (`timers`):
- `train`: the real train step (the `TrainProgram` a run with the same config trains with, random
  examples resident on the devices as the step's `data`); FLOPs a step from the compiled
  executable's cost analysis, achieved FLOP/s and, where the device's peak is known (`machine`),
  MFU. `--batch max` first finds the largest batch whose compiled step fits in device memory
  (`batch_search`).
- `forward`: one denoiser call (`model.apply`, train=False): the cost of one unguided sampling step.
- `sample`: `sampling.cohort.generate` for whole cohorts with the chosen samplers and options;
  samples x steps per second (tokens: from an all-MASK start; also tokens x steps per second).

Models come from `--model/--models` (the paper's sizes and recipe) or `--config` (`models`);
parameters are random (speed does not depend on their values). Results are one JSON-ready dict with
a `machine` block and the command line (`run`). `--reference torch` (`reference`) times the PyTorch
twin of each gene-PCA denoiser and of its train step (benchmarks/torch_reference.py) in the same
run, in turns with ours: the train and forward sections get the twin's timings and `ratio`
(twin seconds / ours). No figure from another run or machine is compared with.

`--project h100,h200` (`projection`) adds what one GPU would take, computed here without one: the
train step's and one sampling step's FLOPs, bytes accessed and memory from the programs XLA
compiles on this machine, the largest train batch that fits each GPU's memory, and roofline times
(lower bounds) beside the project's goals; alone, it compiles only and times nothing.

    genodiff bench --models mlp_unet,cnn_unet --genes 2048 --batch 32 --reference torch
    genodiff bench --config experiments/masked.py --window 7680 --what train,forward,sample
    genodiff bench --models mlp_unet,cnn_unet --genes 26624 --project h100,h200
"""

from genodiff_jax.bench.batch_search import (
    BATCH_GRANULE,
    FIT_FRACTION,
    REFINE,
    compile_train_step,
    largest_fitting,
    largest_train_batch,
    memory_budget,
)
from genodiff_jax.bench.examples import (
    FEATURE_SHAPE,
    Example,
    build_example,
    check_shape_flags,
    param_count,
)
from genodiff_jax.bench.machine import (
    PEAK_TFLOPS,
    bytes_accessed_per_device,
    compiled_memory_bytes,
    flops_per_device,
    machine_info,
    peak_tflops,
    planned_bytes,
)
from genodiff_jax.bench.models import (
    BASE_CONFIG,
    BenchModel,
    build_denoiser,
    is_paper_size,
    jit_forward,
    model_fields,
    parse_model_kwargs,
    resolve_models,
    train_program,
)
from genodiff_jax.bench.projection import (
    DEVICES,
    Device,
    devices_named,
    project,
    roofline_seconds,
    train_people,
)
from genodiff_jax.bench.reference import REFERENCES, TorchReference, torch_twins
from genodiff_jax.bench.run import run_bench, write_json
from genodiff_jax.bench.settings import SECTIONS, BenchSettings, check_settings, parse_batch
from genodiff_jax.bench.timers import bench_forward, bench_sample, bench_train, random_params

__all__ = [
    "BASE_CONFIG", "BATCH_GRANULE", "DEVICES", "FEATURE_SHAPE", "FIT_FRACTION",
    "PEAK_TFLOPS", "REFERENCES", "REFINE", "SECTIONS", "BenchModel",
    "BenchSettings", "Device", "Example", "TorchReference", "bench_forward",
    "bench_sample", "bench_train", "build_denoiser", "build_example", "bytes_accessed_per_device",
    "check_settings", "check_shape_flags", "compile_train_step", "compiled_memory_bytes",
    "devices_named", "flops_per_device", "is_paper_size", "jit_forward", "largest_fitting",
    "largest_train_batch", "machine_info", "memory_budget", "model_fields", "param_count",
    "parse_batch", "parse_model_kwargs", "peak_tflops", "planned_bytes", "project",
    "random_params", "resolve_models", "roofline_seconds", "run_bench", "torch_twins",
    "train_people", "train_program", "write_json",
]
