"""When a run ends: at its step cap, when the selection metric stops improving (early stopping) or
at a wall-time cap, whichever comes first.

Early stopping counts evaluations: the run has converged once `patience` evaluations in a row did
not lower the best value of the selection metric (lower is better) by at least `min_delta`; the
best moves only on such an improvement (as in Keras). Its state is not checkpointed: `replay`
rebuilds it from the evaluations in metrics.jsonl up to the step a run resumes from, so a killed
and resumed run stops at the step, and for the reason, of the uninterrupted one. The time cap
counts the training time recorded in metrics.jsonl (`train_time_s`, summed over the calls that
trained the run, up to the restored checkpoint: the time of steps lost to a kill is not counted),
so it bounds the run, not one call; it is the one cause of a stop that is not deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

CONVERGED, TIME_CAP, STEP_CAP = "converged", "time_cap", "step_cap"
STOP_REASONS = (CONVERGED, TIME_CAP, STEP_CAP)
TIME_KEY = "train_time_s"  # a metrics.jsonl field: seconds this run has trained, over its calls


@dataclasses.dataclass(frozen=True)
class StopRule:
    """`metric`: the selection metric (lower is better); `patience`: evaluations without an
    improvement of at least `min_delta` before the run stops (0: never); `max_minutes`: training
    time after which it stops (0: no cap)."""

    metric: str
    patience: int = 0
    min_delta: float = 0.0
    max_minutes: float = 0.0

    def over_time(self, seconds: float) -> bool:
        return self.max_minutes > 0 and seconds >= 60.0 * self.max_minutes


@dataclasses.dataclass
class Convergence:
    """Early stopping's state: the best value, its step, and the evaluations since; and the
    lowest value and its step (the best checkpoint's, which any gain moves, `min_delta` or not)."""

    best: float = math.inf
    best_step: int | None = None
    evals_since_best: int = 0
    lowest: float = math.inf
    lowest_step: int | None = None

    def update(self, step: int, value: float, min_delta: float) -> None:
        """One evaluation; a non-finite value is no improvement."""
        if math.isfinite(value) and value < self.lowest:
            self.lowest, self.lowest_step = value, step
        if math.isfinite(value) and value < self.best and self.best - value >= min_delta:
            self.best, self.best_step, self.evals_since_best = value, step, 0
        else:
            self.evals_since_best += 1

    def converged(self, rule: StopRule) -> bool:
        return rule.patience > 0 and self.evals_since_best >= rule.patience


def replay(records: Iterable[Mapping], rule: StopRule, step: int) -> tuple[Convergence, float]:
    """(early stopping's state, training seconds) after the metrics.jsonl `records` up to `step`."""
    state, seconds = Convergence(), 0.0
    for r in records:
        if r.get("step", 0) > step:
            continue
        if rule.metric in r:
            state.update(int(r["step"]), float(r[rule.metric]), rule.min_delta)  # "nan" too
        if TIME_KEY in r:
            seconds = float(r[TIME_KEY])
    return state, seconds


def stop_reason(rule: StopRule, state: Convergence, step: int, total: int,
                seconds: float) -> str | None:
    """Why a run at `step` of `total` stops now (None: it goes on). Convergence comes first, then
    the step cap, then the time cap."""
    if state.converged(rule):
        return CONVERGED
    return cap_reached(rule, step, total, seconds)


def cap_reached(rule: StopRule, step: int, total: int, seconds: float) -> str | None:
    """The cap a run at `step` of `total`, `seconds` trained, has reached: the step cap before the
    time cap; None for neither."""
    if step >= total:
        return STEP_CAP
    if rule.over_time(seconds):
        return TIME_CAP
    return None


def stop_record(reason: str, rule: StopRule, state: Convergence, step: int, total: int,
                seconds: float) -> dict:
    """What metrics.jsonl (`stop`), run.json and the result say about a stop, with a sentence."""
    stop = {"reason": reason, "step": step, "num_train_steps": total, "metric": rule.metric,
            "best": state.best, "best_step": state.best_step,
            "evals_since_best": state.evals_since_best, "lowest": state.lowest,
            "lowest_step": state.lowest_step, "patience": rule.patience,
            "min_delta": rule.min_delta, "max_minutes": rule.max_minutes,
            "train_minutes": round(seconds / 60.0, 3),
            "cap_reached": cap_reached(rule, step, total, seconds)}
    return {**stop, "message": stop_message(stop)}


def stop_message(stop: Mapping, *, already: bool = False) -> str:
    """One line: why the run stopped (`already`: it had stopped before this call)."""
    head = f"{'already ' if already else ''}stopped at step {stop['step']}"
    if stop["reason"] == CONVERGED:
        by = f" by {stop['min_delta']:g}" if stop["min_delta"] else ""
        # a gain under min_delta after the best moves the best checkpoint, not the best
        lowest = (f"; lowest {float(stop['lowest']):.4g} at step {stop['lowest_step']}, the best "
                  f"checkpoint" if stop.get("lowest_step") not in (None, stop["best_step"]) else "")
        # convergence is named first (stop_reason); a cap reached at that evaluation too
        cap = stop.get("cap_reached")  # records from before the key: none
        capped = ("; the step cap was reached there too" if cap == STEP_CAP else
                  f"; the time cap of {stop['max_minutes']:g} minutes was reached there too"
                  if cap == TIME_CAP else "")
        return (f"{head}: {stop['metric']} did not improve{by} for {stop['evals_since_best']} "
                f"evaluations (best {float(stop['best']):.4g} at step {stop['best_step']}{lowest})"
                f"{capped}")
    if stop["reason"] == TIME_CAP:
        return (f"{head} of {stop['num_train_steps']}: reached the time cap of "
                f"{stop['max_minutes']:g} minutes ({stop['train_minutes']:.1f} minutes trained)")
    return f"{head}: reached the step cap ({stop['num_train_steps']} steps)"
