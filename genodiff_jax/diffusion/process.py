"""A diffusion process is a plug-in: what the train step, the evaluation and the sampler call.

Processes are found by name in `PROCESSES` (`config.diffusion.process`); each is a frozen dataclass
whose fields are its config keys (`config.diffusion` minus `process`), so `build_process(name,
**fields)` makes one and equal settings compare (and hash) equal.

The train step never looks inside a process. Per batch it calls

    t = process.time(key, shape)      # training times, one per row
    noise = process.noise(key, x0)    # what corrupts x0 (Gaussian eps, masking uniforms)
    loss = process.loss(net, x0, t, noise, mask)

where `net(x_t, t)` is the denoiser applied at `process.model_time(t)`, the quantity the network
is conditioned on (every process defines one in [0, 1]). The evaluation calls `process.eval_terms`
(batch means of the validation metrics; `selection_metric` names the one the best checkpoint
minimises). The sampler calls `sampling_grid(steps)` on the host, `prior(key, shape)` for x_T and
`sample(sampler, net, grid, keys, x_T, mask=..., options=...)` inside one compiled program.
An example (`x`) is an array or a dict of arrays (tokens and their positions).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

import jax

from genodiff_jax.registry import Registry

# net(x_t, t) -> the denoiser's output; t as the process draws it (not yet model_time).
Net = Callable[[jax.Array, jax.Array], jax.Array]


class Process(Protocol):
    """The interface every diffusion process implements (see the module docstring)."""

    selection_metric: ClassVar[str]
    representation: ClassVar[str]  # the dataset view it trains on: "features" or "tokens"
    samplers: Registry

    def time(self, key: jax.Array, shape: tuple[int, ...]) -> jax.Array: ...

    def noise(self, key: jax.Array, like: Any) -> jax.Array: ...

    def model_time(self, t: jax.Array) -> jax.Array: ...

    def as_input(self, x: jax.Array, mask: jax.Array | None) -> jax.Array: ...

    def loss(self, net: Net, x0: jax.Array, t: jax.Array, noise: jax.Array,
             mask: jax.Array | None) -> jax.Array: ...

    def eval_terms(self, net: Net, x0: jax.Array, t: jax.Array, noise: jax.Array,
                   mask: jax.Array | None, weights: jax.Array) -> dict[str, jax.Array]: ...

    def check_steps(self, steps: int | None) -> None: ...

    def sampling_grid(self, steps: int | None) -> Any: ...

    def prior(self, key: jax.Array, row: Any) -> Any: ...

    def sampler_options(self, sampler: str, options: Mapping[str, Any],
                        train_x: Any = None) -> dict[str, Any]: ...

    def sample(self, sampler: str, net: Net, grid: Any, keys_B: jax.Array, x_T: jax.Array, *,
               mask: jax.Array | None, options: Mapping[str, Any]) -> jax.Array: ...


PROCESSES: Registry[type] = Registry("diffusion process")
register_process = PROCESSES.register


def build_process(name: str, **fields: Any) -> Process:
    """The process registered as `name` with its config fields."""
    cls = PROCESSES[name]
    try:
        return cls(**fields)
    except TypeError as e:  # an unknown or missing field
        raise ValueError(f"diffusion process {name!r}: {e}") from e


def sampler_option_names(sampler: Callable, common: tuple[str, ...] = ()) -> list[str]:
    """The options a sampler function takes: its keyword-only parameters, less `common` (the ones
    its process always passes)."""
    params = inspect.signature(sampler).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in common]


def check_sampler_options(samplers: Registry, sampler: str, options: Mapping[str, Any],
                          common: tuple[str, ...] = ()) -> None:
    """ValueError naming the sampler and its options when `options` holds one it does not take."""
    known = sampler_option_names(samplers[sampler], common)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"sampler {sampler!r} takes no option {', '.join(unknown)}; "
                         f"its options: {', '.join(known) or 'none'}")
    defaults = {p.name: p.default for p in inspect.signature(samplers[sampler]).parameters.values()}
    for name, value in options.items():
        problem = _option_problem(name, value, defaults.get(name, inspect.Parameter.empty))
        if problem:
            raise ValueError(f"sampler {sampler!r}: {name} {problem}")


# Ranges of sampler options by name, whichever sampler takes them: (least, greatest or None,
# least included, greatest included). Values outside give a wrong cohort, not an error: eta > 1
# asks DDIM for more noise than the step has, min_p = 1 drops every value but the likeliest.
OPTION_RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    "eta": (0.0, 1.0, True, True),
    "min_p": (0.0, 1.0, True, False),
    "temperature": (0.0, None, False, False),
    "noise": (0.0, None, True, False),
    "order": (1, 3, True, True),
    "clip_x0": (0.0, None, False, False),
}


def _option_problem(name: str, value: Any, default: Any) -> str | None:
    """Why `value` cannot be the sampler option `name` (whose default is `default`), or None:
    of the default's type (bool, int, number, string), finite, in `OPTION_RANGES`."""
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, bool) and not isinstance(value, bool):
        return f"must be True or False, got {value!r}"
    if isinstance(default, int) and not isinstance(default, bool) and not (
            numeric and isinstance(value, int)):
        return f"must be an integer, got {value!r}"
    if isinstance(default, float) and not numeric:
        return f"must be a number, got {value!r}"
    if isinstance(default, str) and not isinstance(value, str):
        return f"must be a name, got {value!r}"
    if not numeric:
        return None
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name in OPTION_RANGES:
        least, most, with_least, with_most = OPTION_RANGES[name]
        low = value < least if with_least else value <= least
        high = most is not None and (value > most if with_most else value >= most)
        if low or high:
            if most is None:
                return f"must be {'>=' if with_least else '>'} {least}, got {value}"
            return (f"must be in {'[' if with_least else '('}{least}, {most}"
                    f"{']' if with_most else ')'}, got {value}")
    return None
