"""The PyTorch reference's CPU figures, and the `reference` / `speedup` fields of a matching run."""

from __future__ import annotations

from typing import Any

# The PyTorch reference implementation, timed on the 2-core CI CPU: float32, K = 8, 26 classes,
# median of >= 5 steps. "forward" is one denoiser call, i.e. one unguided sampling step. Keyed by
# (model, genes); each section is (batch, seconds). The 26,624-gene call was recorded without its
# batch, so it is kept for the record but never matched.
REFERENCE_CPU: dict[tuple[str, int], dict[str, Any]] = {
    ("mlp_cnn", 2048): {"params": 60.1e6, "train": (32, 2.36), "forward": (32, 0.88)},
    ("mlp_unet", 2048): {"params": 41.6e6, "train": (32, 0.23), "forward": (32, 0.024)},
    ("cnn_unet", 2048): {"params": 18.6e6, "train": (32, 1.96), "forward": (32, 0.92)},
    ("transformer", 2048): {"params": 34.1e6, "train": (32, 5.78), "forward": (32, 1.42)},
    ("mlp_cnn", 26624): {"params": 463e6, "train": (8, 17.3), "forward": (None, 23.5)},
}
REFERENCE_WHAT = "PyTorch reference implementation, 2 CPU cores, float32, median of >= 5 steps"
# The CPU goals: our time at least this many times shorter than the reference's.
GOAL_SPEEDUP = {"train": 1.2, "forward": 2.0}


def reference_fields(name: str, genes: int, components: int, section: str, batch: int,
                     seconds: float, *, backend: str, paper_size: bool, dtype: str,
                     weights_dtype: str = "float32") -> dict:
    """`reference` and `speedup` for a run the PyTorch figures cover, else nothing.

    The reference is float32 throughout; a bfloat16-weights forward still gets its speedup, with
    `weights_dtype` beside it so the two are never confused.
    """
    ref = REFERENCE_CPU.get((name, genes))
    if (ref is None or backend != "cpu" or not paper_size or dtype != "float32"
            or components != 8 or section not in ref or ref[section][0] != batch):
        return {}
    ref_batch, ref_seconds = ref[section]
    speedup = ref_seconds / seconds
    return {"reference": {"seconds": ref_seconds, "batch": ref_batch, "params": ref["params"],
                          "what": REFERENCE_WHAT},
            "speedup": speedup, "weights_dtype": weights_dtype,
            "goal_speedup": GOAL_SPEEDUP[section],
            "meets_goal": speedup >= GOAL_SPEEDUP[section]}
