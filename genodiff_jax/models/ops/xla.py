"""XLA compiler options for the "fast" layer set's inference (sampling) programs.

XLA's CPU backend hands dots, elementwise graphs and reductions to YNNPACK by default. For the CNN
denoisers' forward pass, leaving reductions to XLA's own emitters avoids materialising full-size
tensors of constants for YNNPACK's reduction fusions (the 2x2 average pools, the GroupNorm sums).
Only for inference (the backward got slower) and only for the models with the CNN U-Net in them
(the MLP U-Net and the transformer got slower too), hence one table per model name and backend.
Option names and values change between XLA releases: `accepted` drops what this XLA does not know.

Measured figures: docs/benchmarks.md, "Where the CPU fast paths come from".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

import jax

log = logging.getLogger(__name__)

CPU_DOT_AND_ELTWISE_ONLY = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE",
}

# model name -> backend -> options; a model or backend not listed compiles with XLA's defaults.
FAST_INFERENCE_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    "cnn_unet": {"cpu": CPU_DOT_AND_ELTWISE_ONLY},
    "mlp_cnn": {"cpu": CPU_DOT_AND_ELTWISE_ONLY},  # its CNN half dominates the call
}


@functools.cache
def _xla_accepts(options: tuple[tuple[str, str], ...]) -> bool:
    """Whether this XLA compiles a trivial program with the options."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(1.0).compile()
        return True
    except Exception as e:  # noqa: BLE001 - an unknown option is not an error, just no tuning
        log.warning("XLA ignores compiler options %s: %s", dict(options), e)
        return False


def accepted(options: Mapping[str, str] | None) -> dict[str, str] | None:
    """`options` as a dict if this XLA knows them all; None (with a warning) if it does not, or
    if there are none."""
    if not options or not _xla_accepts(tuple(sorted(options.items()))):
        return None
    return dict(options)
