"""The sweep's grid: one cell per (sampler, steps, guidance, temperature), each checked like
`genodiff sample` checks its settings (`pipeline.resolve_sampling`), then sampled once and timed.

Timing: a cell's wall-clock time is split into `compile_s`, what JAX spent tracing, lowering and
compiling (the union of the time spans of its `/jax/core/compile/` monitoring events, so nested
events count once), and `sample_s`, the rest: running the sampler and bringing the cohort to the
host. A program is compiled once per (sampler, options, steps, guided or not, batch shape) and
reused, so cells that differ only in the guidance weight (traced) compile nothing.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jax import monitoring

from genodiff_jax.diffusion.process import sampler_option_names
from genodiff_jax.errors import InputError
from genodiff_jax.sampling.settings import SamplingSettings, resolve_sampling

TEMPERATURE = "temperature"  # the sampler option the temperature axis sets
COMPILE_EVENTS = "/jax/core/compile/"  # prefix of JAX's trace, lower and compile events


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of the grid, as resolved: the sampler's options include the run config's
    (e.g. clip_x0 as a number) and the temperature where the sampler takes one."""

    sampler: str
    steps: int
    guidance: float
    temperature: float | None
    options: Mapping[str, Any]

    @property
    def curve(self) -> tuple[str, float, float | None]:
        """The curve the cell lies on: everything but the number of steps."""
        return (self.sampler, self.guidance, self.temperature)


# -- parsing the command line's lists --------------------------------------------------------------

def parse_list(text: str | None, kind: type, flag: str) -> tuple | None:
    """"a,b,c" -> a tuple of `kind` (None for None); a bad item or an empty list is an
    InputError naming `flag`."""
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    what = "integers" if kind is int else "numbers" if kind is float else "names"
    try:
        values = tuple(kind(x) for x in items)
    except ValueError:
        raise InputError(None, f"{flag}: expected comma-separated {what}, got {text!r}") from None
    if not values:
        raise InputError(None, f"{flag}: give at least one value")
    if len(set(values)) != len(values):
        raise InputError(None, f"{flag}: a value is given twice in {text!r}")
    return values


# -- the grid --------------------------------------------------------------------------------------

def default_steps(process) -> tuple[int, ...]:
    """The family's `default_steps` that the process accepts (a Gaussian run with T = 50 gets
    5, 10, 25, 50)."""
    from genodiff_jax.families import family_of

    ok = []
    for steps in family_of(process).default_steps:
        try:
            process.check_steps(steps)
        except ValueError:
            continue
        ok.append(steps)
    if not ok:
        raise InputError(None, "--steps: none of the default step counts fits this run; give "
                               "--steps")
    return tuple(ok)


def build_grid(process, defaults: dict, *, samplers: Sequence[str] | None = None,
               steps: Sequence[int] | None = None, guidance: Sequence[float] | None = None,
               temperatures: Sequence[float] | None = None, train_x=None) -> list[Cell]:
    """Every cell, checked before any is sampled (InputError on the first bad setting).

    `defaults` is the run's `sampling` section (`train.config.sampling_defaults`); None means:
    samplers, every sampler of the process; steps, `default_steps`; guidance, the run's weight;
    temperatures, the run's option (temperatures apply to samplers that take a `temperature`
    option, every other sampler gets one cell per (steps, guidance))."""
    samplers = tuple(samplers) if samplers is not None else tuple(process.samplers)
    for name in samplers:  # the sampler's name first, so the message names it
        resolve_sampling(process, defaults, SamplingSettings(name, guidance=0.0), train_x)
    steps = tuple(sorted(set(steps))) if steps is not None else default_steps(process)
    guidance = (tuple(dict.fromkeys(guidance)) if guidance is not None
                else (float(defaults["guidance"]),))
    takes_t = {name: TEMPERATURE in sampler_option_names(process.samplers[name])
               for name in samplers}
    if temperatures is not None:
        bad = [t for t in temperatures if not (math.isfinite(t) and t > 0)]
        if bad:
            raise InputError(None, f"--temperatures: each must be a finite number > 0, got "
                                   f"{bad[0]}")
        if not any(takes_t.values()):
            raise InputError(None, f"--temperatures: none of the samplers {', '.join(samplers)} "
                                   "takes a temperature")
    cells = []
    for name in samplers:
        temps = (temperatures or (None,)) if takes_t[name] else (None,)
        for w in guidance:
            for t in temps:
                for k in steps:
                    options = None if t is None else {TEMPERATURE: float(t)}
                    chosen = resolve_sampling(process, defaults,
                                              SamplingSettings(name, int(k), w, options), train_x)
                    opts = dict(chosen.options)
                    temp = opts.get(TEMPERATURE) if takes_t[name] else None
                    cells.append(Cell(name, int(chosen.steps), chosen.guidance,
                                      None if temp is None else float(temp), opts))
    return cells


# -- sampling one cell -----------------------------------------------------------------------------

class CompileClock:
    """`with CompileClock() as clock:` ... `clock.seconds`: the wall-clock seconds JAX spent
    compiling inside the block (see the module docstring)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def _listen(self, event: str, start: float, end: float, **kwargs) -> None:
        if event.startswith(COMPILE_EVENTS):
            self.spans.append((start, end))

    def __enter__(self) -> CompileClock:
        monitoring.register_event_time_span_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        monitoring.unregister_event_time_span_listener(self._listen)

    @property
    def seconds(self) -> float:
        total, reach = 0.0, -math.inf
        for start, end in sorted(self.spans):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


def sample_cell(trained, data, cell: Cell, labels_N: np.ndarray,
                settings: SamplingSettings, plan=None) -> tuple[np.ndarray, dict]:
    """The cohort of one cell as its family samples it (`plan`: the family's sampling plan),
    with the seed, batch size and mesh of `settings`, and its timing {"compile_s",
    "sample_s"}. A NaN or inf in the samples raises `cohort.NonFiniteSampleError`."""
    from genodiff_jax.families import family_of

    settings = dataclasses.replace(settings, sampler=cell.sampler, steps=cell.steps,
                                   guidance=cell.guidance, options=dict(cell.options))
    t0 = time.perf_counter()
    with CompileClock() as clock:
        out = family_of(trained.process).generate(trained, data, labels_N, settings, plan=plan)
    wall = time.perf_counter() - t0
    compile_s = min(clock.seconds, wall)
    return out, {"compile_s": compile_s, "sample_s": wall - compile_s}
