"""Orbax checkpoints of a run: `latest/` to resume from, `best/` by validation reconstruction error.

Layout under `W/checkpoints/`:
- `latest/<step>/`: the whole `TrainState`; only the newest `keep` steps stay. Resume reads it.
- `best/<step>/`: {"step", "params", "ema_params"} of the step with the lowest validation metric
  (the process's `selection_metric`: `val_recon` for the Gaussian process, DESIGN 1.2); orbax keeps
  the best one by the metric saved with it. Sampling reads it.

Everything restores into an abstract target (`jax.ShapeDtypeStruct`s that carry shardings), so
arrays land directly in their final placement. Saves are asynchronous; call `wait_until_finished()`
(or `close()`) before the process exits, or `abandon()` on the way out of a failed or interrupted
run (no half-saved step is left behind).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from genodiff_jax.errors import InputError
from genodiff_jax.train.state import TrainState

PyTree = Any

LATEST = "latest"
TMP_SUFFIX = ocp.utils.TMP_DIR_SUFFIX  # orbax writes step N into `N<TMP_SUFFIX>...`, then renames
BEST = "best"
BEST_METRIC = "val_recon"  # the Gaussian process's; a store is told its run's metric


class UnreadableCheckpointError(InputError):
    """A checkpoint that orbax cannot read back (truncated, corrupt, or of another model)."""


def _closed_loop_muted(previous):
    """An unraisable-exception hook that drops "Event loop is closed": after a failed restore,
    reads still in flight complete into orbax's closed event loop and report that."""

    def hook(unraisable) -> None:
        value = unraisable.exc_value
        if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
            previous(unraisable)

    return hook


@contextlib.contextmanager
def _reading(step_dir: Path, advice: str) -> Iterator[None]:
    """Restore under this: an unreadable checkpoint becomes one `UnreadableCheckpointError`
    naming it and `advice`. Orbax's reader threads print tracebacks of their own when a read
    fails; stderr is held back meanwhile and shown only when the restore succeeds, and their
    late reports stay muted after a failure."""
    sys.stderr.flush()
    saved, hook = os.dup(2), sys.unraisablehook
    sys.unraisablehook = _closed_loop_muted(hook)
    failed = False
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except Exception as e:  # orbax/tensorstore raise ValueError, OSError, KeyError, ...
            failed = True
            while e.__cause__ is not None:  # the reader's own error says what is wrong
                e = e.__cause__
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise UnreadableCheckpointError(
                step_dir, f"unreadable checkpoint ({first[:200]}); {advice}") from None
        else:
            held.seek(0)
            os.write(saved, held.read())
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if not failed:
                sys.unraisablehook = hook


def best_item(state: TrainState) -> dict:
    """What `best/` holds: no optimiser state,
    which a sampler never needs (it is twice the params)."""
    return {"step": state.step, "params": state.params, "ema_params": state.ema_params}


def _access(async_save: bool, read_only: bool) -> dict:
    """CheckpointManagerOptions both managers share. Orbax creates a step's folders in the calling
    thread, so when a save is interrupted every temporary folder it made already exists and
    `abandon` can remove it (made in a background thread, one could appear after abandon looked).
    A reader neither writes nor clears the temporary folders of unfinished saves: they may be a
    live training run's saves in flight."""
    return dict(enable_async_checkpointing=async_save,
                async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
                cleanup_tmp_directories=not read_only, read_only=read_only,
                create=not read_only, save_interval_steps=0 if read_only else 1)


@contextlib.contextmanager
def _absl_errors_only() -> Iterator[None]:
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class CheckpointStore:
    """The two checkpoint managers of one run directory."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 1, async_save: bool = True,
                 best_metric: str = BEST_METRIC, read_only: bool = False):
        """`read_only` for readers (sampling, evaluation): they neither write nor clear the
        temporary folders of unfinished saves, which may be a live training run's save in flight."""
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric

        def metric(metrics: dict) -> float:
            if best_metric not in metrics:  # a run of another process (family) saved these
                ranked = ", ".join(sorted(metrics)) or "nothing"
                raise InputError(self.directory / BEST, f"its checkpoints are ranked by {ranked}, "
                                 f"not {best_metric}: they are of a run of another diffusion "
                                 "family; use a new --workdir or the run's own config")
            return float(metrics[best_metric])

        access = _access(async_save, read_only)
        quiet = _absl_errors_only() if read_only else contextlib.nullcontext()
        with quiet:  # orbax warns of each setting read_only turns off, and of read_only itself
            self.latest = ocp.CheckpointManager(
                self.directory / LATEST,
                options=ocp.CheckpointManagerOptions(
                    preservation_policy=ocp.checkpoint_managers.LatestN(n=keep), **access))
            self.best = ocp.CheckpointManager(
                self.directory / BEST,
                options=ocp.CheckpointManagerOptions(
                    # best_fn makes orbax store the metrics with each step and rank steps by
                    # them; reverse=True sorts descending, so BestN's kept tail is the lowest.
                    best_fn=metric,
                    best_mode="min",
                    preservation_policy=ocp.checkpoint_managers.BestN(
                        get_metric_fn=metric, reverse=True, n=1,
                        keep_checkpoints_without_metrics=False),
                    **access))

        # The best value so far, kept here: an async save's metrics are unreadable until it commits.
        self._best: tuple[int, float] | None = None
        self._started: set[tuple[str, int]] = set()  # (LATEST or BEST, step) of saves begun here
        self._closed = False
        try:
            step = self.best.best_step()
            metrics = self.best.metrics(step) if step is not None else None
            if metrics is not None:
                self._best = (step, metric(metrics))
        except InputError:
            self.close()
            raise

    # -- latest ------------------------------------------------------------------------------------

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def save(self, state: TrainState, *, force: bool = True) -> bool:
        """Save the whole state at its own step (the caller decides when)."""
        step = int(jax.device_get(state.step))
        self._started.add((LATEST, step))
        return self.latest.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, target: TrainState, step: int | None = None) -> TrainState:
        """The state at `step` (default: the latest) into `target`,
        an abstract sharded `TrainState`."""
        step = self.latest.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory / LATEST}")
        with _reading(self.directory / LATEST / str(step), self._resume_advice(step)):
            return self.latest.restore(step, args=ocp.args.StandardRestore(target))

    def _resume_advice(self, step: int) -> str:
        earlier = [s for s in self.latest.all_steps() if s < step]
        if earlier:
            return (f"move {self.directory / LATEST / str(step)} aside to resume from step "
                    f"{max(earlier)}, the previous one kept")
        return "no earlier checkpoint is kept (checkpoint.keep): train again with a new --workdir"

    # -- best --------------------------------------------------------------------------------------

    def best_value(self) -> tuple[int, float] | None:
        """(step, metric) of the best checkpoint so far, or None."""
        return self._best

    def save_best(self, state: TrainState, value: float) -> bool:
        """Save params + EMA params if the metric `value` beats the best so far; return whether
        it did."""
        step = int(jax.device_get(state.step))
        if self._best is not None and (not value < self._best[1] or self._best[0] == step):
            return False
        self._started.add((BEST, step))
        saved = self.best.save(step, args=ocp.args.StandardSave(best_item(state)),
                               metrics={self.best_metric: float(value)}, force=True)
        if saved:
            self._best = (step, float(value))
        return saved

    def restore_best(self, target: dict, step: int | None = None) -> dict:
        """{"step", "params", "ema_params"} of the best step into `target`
        (abstract, see `best_item`)."""
        step = self.best.best_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory / BEST}")
        advice = ("use the last training step instead (`genodiff sample --checkpoint latest`)"
                  if self.latest_step() is not None else "train again with a new --workdir")
        with _reading(self.directory / BEST / str(step), advice):
            return self.best.restore(step, args=ocp.args.StandardRestore(target))

    # -- lifetime ----------------------------------------------------------------------------------

    def wait_until_finished(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        """Wait for saves in flight and for the clearing of earlier runs' unfinished saves (orbax
        clears them in a thread that its own close does not wait for), then close."""
        if self._closed:
            return
        self._closed = True
        try:
            for manager in (self.latest, self.best):
                clearing = getattr(manager, "_maybe_await_cleanup_tmp_directory", None)
                if clearing is not None:
                    clearing()
            self.latest.close()
        finally:
            self.best.close()

    def abandon(self) -> None:
        """Close on the way out of a failed or interrupted run: a save in flight is let finish
        (close waits for it), and the temporary folder of any save begun here that did not finish
        (Ctrl-C while orbax wrote it, a second Ctrl-C while waiting, a full disk) is removed, so
        `latest/` and `best/` hold only complete steps. Without this the folder stays until the
        next run's orbax clears it."""
        try:
            self.close()
        finally:
            if jax.process_index() == 0:  # the process that creates the step folders
                for which, step in sorted(self._started):
                    for tmp in (self.directory / which).glob(f"{step}{TMP_SUFFIX}*"):
                        shutil.rmtree(tmp, ignore_errors=True)

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def restore_params(
    directory: str | os.PathLike,
    abstract_params: PyTree,
    *,
    which: str = BEST,
    ema: bool = True,
    best_metric: str = BEST_METRIC,
) -> tuple[PyTree, int]:
    """(params, step) for sampling: EMA (or raw) params from `best/` (or `latest/`) of a run.

    `abstract_params` is the params tree as ShapeDtypeStructs (with shardings, or None for the
    default device), e.g. `train.state.abstract_params(model, row)`. Falls back to `latest/` when
    `best/` is empty. `best_metric` is the metric the run's best checkpoints were ranked by.
    """
    if which not in (BEST, LATEST):
        raise ValueError(f"which must be {BEST!r} or {LATEST!r}, got {which!r}")
    key = "ema_params" if ema else "params"
    store = CheckpointStore(directory, async_save=False, best_metric=best_metric, read_only=True)
    try:
        if which == BEST and store.best.best_step() is not None:
            step_sds = jax.ShapeDtypeStruct((), "int32")
            target = {"step": step_sds, "params": abstract_params, "ema_params": abstract_params}
            restored = store.restore_best(target)
        else:
            step = store.latest_step()
            if step is None:
                raise FileNotFoundError(f"no checkpoint under {store.directory}")
            # Only the needed subtree: restoring the full state would need the optimiser's shapes.
            item = {key: abstract_params, "step": jax.ShapeDtypeStruct((), "int32")}
            advice = ("sample from the best step instead (`--checkpoint best`)"
                      if store.best.best_step() is not None else store._resume_advice(step))
            with _reading(store.directory / LATEST / str(step), advice):
                restored = store.latest.restore(step, args=ocp.args.PyTreeRestore(
                    item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                    partial_restore=True))
        return restored[key], int(restored["step"])
    finally:
        store.close()
