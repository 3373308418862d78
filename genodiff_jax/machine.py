"""The machine a run, a sweep or a benchmark ran on: backend, devices, CPU and the versions that set
the speed (written beside every timing)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import jax
import numpy as np


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Backend, devices, processes, CPU, and the versions that set the speed."""
    device = jax.devices()[0]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "backend": jax.default_backend(), "device_kind": device.device_kind,
        "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(), "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(), "cpus_usable": affinity, "platform": platform.platform(),
        "python": platform.python_version(), "jax": jax.__version__, "jaxlib": _version("jaxlib"),
        "flax": _version("flax"), "optax": _version("optax"), "numpy": np.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS") or None,
    }
