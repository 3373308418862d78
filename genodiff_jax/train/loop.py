"""The training loop: a config and a prepared dataset -> steps, logs, evaluations, checkpoints.

`run_training` is what `genodiff train` calls; `train` does the work for a config already loaded.
The run is built from the config (`train.config`) and trained on the process's view of the dataset
(`data.views`: gene-PCA features or genotype-token windows); only these two functions read the
ConfigDict. A second call with the same work dir resumes from `checkpoints/latest/`; since each
step's randomness is fold_in(key, step), the resumed run retraces the uninterrupted one, and it
stops where that one does (`train.stopping`: early stopping is rebuilt from metrics.jsonl). The
work dir layout is in `train.trained`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.atomic import write_marker
from genodiff_jax.data.loader import PreparedDataset, load_prepared, put_data
from genodiff_jax.data.views import VIEWS
from genodiff_jax.errors import InputError
from genodiff_jax.sharding import (
    is_main_process,
    make_mesh,
    maybe_initialize_distributed,
    put_replicated,
)
from genodiff_jax.train.checkpoint import CheckpointStore
from genodiff_jax.train.config import (
    DEFAULT_CONFIG,
    apply_overrides,
    load_config,
    model_from_config,
    num_train_steps,
    optimizer_config,
    process_from_config,
    recipe_from_config,
    stop_rule_from_config,
)
from genodiff_jax.train.metrics import (
    METRICS_FILE,
    MetricsWriter,
    read_metrics,
    truncate_after,
)
from genodiff_jax.train.program import build_program
from genodiff_jax.train.stopping import (
    STOP_REASONS,
    TIME_CAP,
    TIME_KEY,
    replay,
    stop_reason,
    stop_record,
)
from genodiff_jax.train.trained import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    RUN_FILE,
    WORKDIR_KIND,
    row_to_json,
)
from genodiff_jax.train.workdir import (
    check_same_run,
    check_workdir,
    note_stop,
    recorded_stop,
    report_stopped,
    run_result,
    write_json,
)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf; the run stopped and its last good checkpoint is kept."""

    def __init__(self, step: int, what: str, workdir: Path, last_good_step: int | None):
        self.step = step
        self.last_good_step = last_good_step
        kept = (f"the last good checkpoint (step {last_good_step}) is kept in "
                f"{workdir / CHECKPOINT_DIR}" if last_good_step is not None
                else "no checkpoint had been written yet")
        super().__init__(f"{what} is not finite at step {step}; training stopped and {kept}. "
                         "Check the data, lower optim.learning_rate, set optim.clip_grad_norm > 0, "
                         "or train in float32.")


# -- the loop --------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Window:
    """Host-side metrics of the steps since the last log line."""

    loss: list[float] = dataclasses.field(default_factory=list)
    grad_norm: list[float] = dataclasses.field(default_factory=list)
    lr: float = float("nan")
    start_time: float = dataclasses.field(default_factory=time.perf_counter)

    def add(self, host_metrics: dict) -> None:
        self.loss.append(float(host_metrics["loss"]))
        self.grad_norm.append(float(host_metrics["grad_norm"]))
        self.lr = float(host_metrics["lr"])

    def summary(self, batch_size: int) -> dict:
        seconds = max(time.perf_counter() - self.start_time, 1e-9)
        steps_per_sec = len(self.loss) / seconds
        return {"loss": float(np.mean(self.loss)), "grad_norm": float(np.mean(self.grad_norm)),
                "lr": self.lr, "steps_per_sec": steps_per_sec,
                "examples_per_sec": steps_per_sec * batch_size}


def _agree(reason: str | None) -> str | None:
    """Process 0's stop decision on every process: their clocks differ (and so may the
    metrics.jsonl they read back), and a process that stops alone hangs the others."""
    if jax.process_count() == 1:
        return reason
    from jax.experimental import multihost_utils

    codes = (None, *STOP_REASONS)
    return codes[int(multihost_utils.broadcast_one_to_all(np.int32(codes.index(reason))))]


def train(
    config: ml_collections.ConfigDict,
    data: str | os.PathLike | PreparedDataset,
    workdir: str | os.PathLike,
    *,
    stop_at_step: int | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume) the run of `config` on a prepared dataset in `workdir`;
    return final metrics.

    The run ends at its step cap, or earlier when early stopping finds it converged or it reaches
    its time cap (config `train.early_stopping`, `train.max_minutes`; `train.stopping`); the
    result then says why (`stop_reason`: converged, time_cap or step_cap; `stop`: the details and
    a one-line `message`), as do the last record of metrics.jsonl and run.json. A run that has
    stopped trains no further when called again: the result reports the stop (its message begins
    "already stopped"). `stop_at_step` ends this call early (after a checkpoint; `stop_reason`
    None) without changing the run's length or its learning-rate schedule: calling again with the
    same work dir continues it. Raises `NonFiniteLossError` on a NaN/inf loss, gradient or
    parameter, keeping the last good checkpoint.
    """
    t_call = time.perf_counter()  # the time cap counts this call's time from here
    workdir = Path(workdir).absolute()
    ds = data if isinstance(data, PreparedDataset) else load_prepared(data)
    if len(ds.test) == 0:
        raise InputError(ds.path, "the test split is empty; prepare with --test-fraction > 0")
    check_workdir(workdir, ds)
    main = is_main_process()
    mesh = make_mesh(config.mesh.num_devices)
    batch_size = int(config.train.batch_size)
    if batch_size % mesh.size or config.eval.batch_size % mesh.size:
        raise InputError(None, f"train.batch_size ({batch_size}) and eval.batch_size "
                         f"({config.eval.batch_size}) must be multiples of the {mesh.size} devices")
    for name in ("log.every_steps", "eval.every_steps", "checkpoint.every_steps"):
        section, key = name.split(".")
        if int(config[section][key]) < 1:
            raise InputError(None, f"{name} must be >= 1, got {config[section][key]}")
    process = process_from_config(config)
    model = model_from_config(config, ds.num_classes)
    view = VIEWS[process.representation](ds, process, model)
    total = num_train_steps(batch_size, int(config.train.num_steps),
                            float(config.train.num_epochs), len(view.train_labels))
    end = total if stop_at_step is None else min(total, int(stop_at_step))
    program = build_program(model, process, optimizer_config(config, total),
                            recipe_from_config(config), row=view.row, mask=view.mask,
                            num_classes=ds.num_classes, mesh=mesh)
    metric = program.process.selection_metric
    rule = stop_rule_from_config(config, metric)

    init_key, train_key, eval_key = jax.random.split(jax.random.key(int(config.seed)), 3)
    train_key, eval_key = put_replicated((train_key, eval_key), mesh)

    store = CheckpointStore(workdir / CHECKPOINT_DIR, keep=int(config.checkpoint.keep),
                            async_save=bool(config.checkpoint.async_save), best_metric=metric)
    if store.latest_step() is not None:
        try:
            check_same_run(workdir / CONFIG_FILE, config)
        except InputError:
            store.close()
            raise
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
        write_marker(workdir, WORKDIR_KIND)
        write_json(workdir / CONFIG_FILE, config.to_dict())
        write_json(workdir / RUN_FILE, {
            "data_dir": str(Path(ds.path).absolute()), "dataset_fingerprint": ds.fingerprint,
            "feature_shape": list(ds.mask.shape),
            "row": row_to_json(program.row),
            "num_classes": ds.num_classes, "class_names": list(ds.class_names),
            "num_train": len(ds.train), "num_test": len(ds.test), "num_train_steps": total,
            "num_devices": mesh.size, "num_processes": jax.process_count(),
            "jax_version": jax.__version__, "baselines": view.baselines,
            **recorded_stop(workdir)})

    writer = None
    pbar = None
    try:
        if store.latest_step() is not None:
            state = store.restore(program.abstract_state)
        else:
            state = program.init_state(init_key)
        start = int(jax.device_get(state.step))
        if main:
            truncate_after(workdir / METRICS_FILE, start)
        writer = MetricsWriter(workdir, enabled=main, tensorboard=bool(config.log.tensorboard))
        # Early stopping and the time cap go on from what the run logged up to its checkpoint.
        convergence, seconds_before = replay(read_metrics(workdir / METRICS_FILE), rule, start)
        reason = _agree(stop_reason(rule, convergence, start, total, seconds_before))
        if reason is not None or start >= end:  # nothing left to do: report what was logged
            stop = (None if reason is None else
                    stop_record(reason, rule, convergence, start, total, seconds_before))
            return report_stopped(workdir, start, total, store, stop, main)
        if main and recorded_stop(workdir):
            note_stop(workdir, None)  # it stopped before, and stopping keys changed since

        train_data = put_data(view.train_x, view.train_labels, mesh)
        test_data = put_data(view.test_x, view.test_labels, mesh)
        params_field = "ema_params" if config.eval.use_ema else "params"
        evaluate = program.evaluation(batch_size=int(config.eval.batch_size),
                                      num_rows=test_data["labels"].shape[0], params=params_field)
        all_finite = jax.jit(lambda tree: jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)])))

        t0 = time.perf_counter()
        compiled = program.step.lower(state, train_data, train_key).compile()
        compile_time = time.perf_counter() - t0

        log_every, eval_every = int(config.log.every_steps), int(config.eval.every_steps)
        ckpt_every = int(config.checkpoint.every_steps)
        pbar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True,
                    disable=not (progress and main))
        if start and main:
            pbar.write(f"resumed from step {start} in {workdir}")

        def nonfinite(step: int, what: str) -> NonFiniteLossError:
            store.wait_until_finished()
            return NonFiniteLossError(step, what, workdir, store.latest_step())

        def read(step: int, metrics: dict) -> dict:
            host = jax.device_get(metrics)
            for name in ("loss", "grad_norm"):
                if not np.isfinite(host[name]):
                    raise nonfinite(step, name)
            return host

        window = _Window()
        record: dict = {"step": start}
        pending = None
        step = start
        reason = None
        while step < end and reason is None:
            # Dispatch this step before reading the last one's metrics, so the device never idles on
            # the host; the read also blocks every step, which old CPU multi-device runtimes need.
            with jax.transfer_guard("disallow"):
                state, metrics = compiled(state, train_data, train_key)
            step += 1
            if pending is not None:
                window.add(read(*pending))
            pending = (step, metrics)
            # Not at a stop_at_step pause: every evaluation counts for early stopping, and a
            # resumed run must see the ones of the uninterrupted run.
            do_eval = step % eval_every == 0 or step == total
            do_ckpt = step % ckpt_every == 0 or step == end
            if not (do_eval or do_ckpt or step % log_every == 0):
                pbar.update(1)
                continue
            window.add(read(*pending))
            pending = None
            scalars = window.summary(batch_size)
            scalars["epoch"] = step * batch_size / len(view.train_labels)
            if compile_time is not None:
                scalars["compile_time_s"], compile_time = compile_time, None
            # The time cap is checked where the run logs; a stop there evaluates and checkpoints.
            seconds = seconds_before + time.perf_counter() - t_call
            time_up = _agree(TIME_CAP if step < total and rule.over_time(seconds) else None)
            do_eval = do_eval or time_up is not None
            if do_eval:
                val = jax.device_get(evaluate(getattr(state, params_field), test_data, eval_key))
                scalars.update({k: float(v) for k, v in val.items()})
                convergence.update(step, scalars[metric], rule.min_delta)
            reason = _agree(stop_reason(rule, convergence, step, total, seconds))
            do_ckpt = do_ckpt or reason is not None
            if do_ckpt:
                # A finite loss at this step does not rule out an update that overflowed.
                if not bool(all_finite(state.params)):
                    raise nonfinite(step, "a parameter")
                store.save(state)
            if do_eval and np.isfinite(scalars[metric]):
                store.save_best(state, scalars[metric])
            scalars[TIME_KEY] = seconds  # what the decision saw: a resumption goes on from it
            if reason is not None:
                scalars["stop_reason"] = reason
                scalars["stop"] = stop_record(reason, rule, convergence, step, total, seconds)
            record = writer.write(step, scalars)
            pbar.set_postfix(loss=f"{scalars['loss']:.4f}", refresh=False)
            pbar.update(1)
            window = _Window()  # restarted after eval and checkpoint: they are not step time

        store.wait_until_finished()
        if main and "stop" in record:
            note_stop(workdir, record["stop"])
        return run_result(record, total, step, workdir, store)
    except BaseException:  # Ctrl-C, SIGTERM, an error: no half-saved checkpoint stays behind
        store.abandon()
        raise
    finally:
        if pbar is not None:
            pbar.close()
        if writer is not None:
            writer.close()
        store.close()


# -- entry points ----------------------------------------------------------------------------------

def run_training(
    data_dir: str | os.PathLike,
    workdir: str | os.PathLike,
    config_path: str | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    stop_at_step: int | None = None,
    progress: bool = True,
) -> dict:
    """`genodiff train`: load `config_path` (experiments/NAME.py[:ARG]; default
    experiments/demo.py), start jax.distributed if the config asks for it, train on `data_dir` in
    `workdir` (resuming if it holds a checkpoint), and return the final metrics."""
    config = load_config(config_path or DEFAULT_CONFIG)
    if overrides:
        apply_overrides(config, overrides)
    d = config.distributed
    maybe_initialize_distributed(d.coordinator_address or None, d.num_processes, d.process_id)
    return train(config, data_dir, workdir, stop_at_step=stop_at_step, progress=progress)
