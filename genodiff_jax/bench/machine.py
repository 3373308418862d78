"""The machine a benchmark ran on, device peaks, and what XLA says a compiled call costs."""

from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh

from genodiff_jax.machine import machine_info  # noqa: F401  (a benchmark's machine, re-exported)

# Dense (no 2:4 sparsity) peak TFLOP/s per device: (device_kind substring, bfloat16, float32), first
# match wins. float32 uses the TF32 tensor-core figure: at the default precision XLA runs float32
# dots as TF32 on A100/H100 (jax-ml/jax#18934); pass --peak-tflops 66.9 for an H100 at "highest".
# Source: NVIDIA's H100 and A100 datasheets (which quote with-sparsity figures: halved here), as
# tabulated at https://glennklockwood.com/garden/processors/h100 (H100 SXM5: BF16 989.4, TF32 494.7;
# H200 has the H100's compute with more HBM) and https://glennklockwood.com/garden/processors/A100
# (BF16 312, TF32 156), and H100 PCIe (BF16 1513 / TF32 756 with sparsity) at
# https://archive-lib.hpctech.co.jp/gpuproduct/nvidia-h100.html. H100 NVL is left unknown.
PEAK_TFLOPS: tuple[tuple[str, float | None, float | None], ...] = (
    ("H100 PCIe", 756.5, 378.0),
    ("H100 NVL", None, None),
    ("H100", 989.4, 494.7),
    ("H200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
)


def peak_tflops(device_kind: str, dtype: str) -> float | None:
    """Dense peak TFLOP/s of one device of this kind at this compute dtype; None when unknown."""
    for key, bf16, fp32 in PEAK_TFLOPS:
        if key.lower() in device_kind.lower():
            return bf16 if dtype == "bfloat16" else fp32
    return None


# -- device memory ---------------------------------------------------------------------------------

def free_device_bytes(mesh: Mesh) -> int | None:
    """The first device's memory limit less what is in use (GPU/TPU); None where unreported."""
    device = mesh.devices.flat[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def peak_device_memory_bytes() -> int | None:
    """The largest `peak_bytes_in_use` over this process's devices (GPU/TPU); None on CPU. It is the
    process's peak so far, so it covers every section and model measured before it."""
    peaks = []
    for device in jax.local_devices():
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


# -- what a compiled call costs --------------------------------------------------------------------

def _cost(compiled: Any, key: str) -> float | None:
    """`key` of `compiled.cost_analysis()` (a dict, or a list of dicts on older JAX: the first is
    the partitioned program), per device; None when the backend gives none."""
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(analysis, list | tuple):
        analysis = next((a for a in analysis if a), None)
    if not analysis:
        return None
    value = analysis.get(key)
    return float(value) if value is not None and value >= 0 else None


def flops_per_device(compiled: Any) -> float | None:
    """FLOPs of one call per device (a multiply-add is 2); None when the backend gives none."""
    return _cost(compiled, "flops")


def bytes_accessed_per_device(compiled: Any) -> float | None:
    """Bytes one call reads and writes per device, as XLA's cost analysis counts them (each fused
    computation's operands and results, so it depends on the backend's fusion); None when the
    backend gives none."""
    return _cost(compiled, "bytes accessed")


def _memory_analysis(compiled: Any) -> Any:
    try:
        return compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None


def _planned(stats: Any) -> int:
    """Arguments + outputs + temporaries - donated (aliased) bytes: all a call holds at once."""
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def compiled_memory_bytes(compiled: Any) -> int | None:
    """XLA's estimate of one call's peak device memory (per device); None when unavailable."""
    stats = _memory_analysis(compiled)
    if stats is None:
        return None
    return int(getattr(stats, "peak_memory_in_bytes", 0) or 0) or _planned(stats)


def planned_bytes(compiled: Any) -> int | None:
    """The bytes per device a compiled call plans to hold at once, for deciding what fits; None
    when unavailable. Not `peak_memory_in_bytes`: XLA's CPU backend leaves temporaries out of it."""
    stats = _memory_analysis(compiled)
    return None if stats is None else _planned(stats)


def throughput(flops_device: float | None, seconds: float, num_devices: int,
               peak: float | None, unit: str) -> dict:
    """FLOPs a call (all devices and one), achieved TFLOP/s and MFU against `peak` a device."""
    flops = None if flops_device is None else flops_device * num_devices
    achieved = None if flops is None else flops / seconds / 1e12
    mfu = None if achieved is None or not peak else achieved / (peak * num_devices)
    return {f"flops_per_{unit}": flops, f"flops_per_{unit}_per_device": flops_device,
            "achieved_tflops": achieved, "peak_tflops_per_device": peak, "mfu": mfu}
