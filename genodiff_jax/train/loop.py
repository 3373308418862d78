"""The training loop: config -> model, state, compiled step -> steps, logs, evaluations, checkpoints.

`run_training` is what `genodiff train` calls; `train` does the work for a config already loaded;
`load_trained` gives a sampler the model and its best parameters back from a work dir. Only these
top-level functions read the ConfigDict; everything below them takes typed arguments.

Work dir layout: `config.json` (the config), `run.json` (data dir, feature shape, classes, length),
`metrics.jsonl`, `tensorboard/`, `checkpoints/latest/`, `checkpoints/best/`. A second call with the
same work dir resumes from `checkpoints/latest/`; since each step's randomness is fold_in(key, step),
the resumed run retraces the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from genodiff_jax.atomic import atomic_file
from genodiff_jax.data.loader import PreparedDataset, load_prepared
from genodiff_jax.diffusion import get_prediction, get_schedule
from genodiff_jax.errors import InputError
from genodiff_jax.models import abstract_params, build_model
from genodiff_jax.sharding import (
    is_main_process,
    make_mesh,
    maybe_initialize_distributed,
    put_replicated,
)
from genodiff_jax.train.checkpoint import CheckpointStore, restore_params
from genodiff_jax.train.metrics import METRICS_FILE, MetricsWriter, read_metrics, truncate_after
from genodiff_jax.train.state import (
    OptimizerConfig,
    abstract_train_state,
    create_train_state,
    make_lr_schedule,
    make_optimizer,
)
from genodiff_jax.train.step import (
    jit_eval_fn,
    jit_train_step,
    make_eval_fn,
    make_train_step,
    put_data,
)

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"
CHECKPOINT_DIR = "checkpoints"
EXPERIMENTS_DIR = Path(__file__).resolve().parents[2] / "experiments"
DEFAULT_CONFIG = "experiments/demo.py"
# Config sections that define the run; the others (eval, checkpoint, log, mesh, distributed) may change
# between a run and its resumption.
RUN_DEFINING = ("seed", "model", "diffusion", "train", "optim")


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


# -- configs ---------------------------------------------------------------------------------------

def _resolve_config_path(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    # `experiments/NAME.py` from anywhere: the configs sit beside the package in this repository.
    for candidate in (EXPERIMENTS_DIR.parent / path, EXPERIMENTS_DIR / p.name):
        if candidate.is_file():
            return candidate.resolve()
    raise InputError(path, "no such config file (expected experiments/NAME.py[:ARG])")


def load_config(spec: str) -> ml_collections.ConfigDict:
    """`path/NAME.py[:ARG]` -> `get_config(ARG)` of that file, locked (like ml_collections' config_flags).

    A file inside a package folder (experiments/ has an __init__.py) is imported as a module of that
    package, so configs can `from experiments import base`.
    """
    path_str, _, arg = spec.partition(":")
    path = _resolve_config_path(path_str)
    if (path.parent / "__init__.py").is_file():
        root = str(path.parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        module = importlib.import_module(f"{path.parent.name}.{path.stem}")
    else:
        spec_obj = importlib.util.spec_from_file_location(f"_genodiff_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec_obj)
        spec_obj.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise InputError(path, "a config file must define get_config(arg)")
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except ValueError as e:
        raise InputError(path, str(e)) from e
    config.lock()
    return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys ("train.num_steps": 100); an unknown key is an error (the config is locked)."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        try:
            for name in parents:
                node = node[name]
            if leaf not in node:
                raise KeyError(leaf)
            node[leaf] = value
        except (KeyError, AttributeError, TypeError) as e:
            raise InputError(None, f"config override {dotted}={value!r}: {e}") from e


def num_train_steps(batch_size: int, num_steps: int, num_epochs: float, num_train: int) -> int:
    """Steps to run: `num_steps` when > 0, else enough steps to draw `num_epochs` x the training rows."""
    if num_steps > 0:
        return int(num_steps)
    if num_epochs <= 0:
        raise InputError(None, "set train.num_steps > 0 or train.num_epochs > 0")
    return max(1, math.ceil(num_epochs * num_train / batch_size))


def model_from_config(config: ml_collections.ConfigDict, num_classes: int) -> nn.Module:
    """The denoiser named in `config.model`, with its kwargs (JSON lists back to tuples)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.model.kwargs.items()}
    dtype = jnp.dtype(config.model.dtype)
    return build_model(config.model.name, num_classes=num_classes, dtype=dtype,
                       param_dtype=jnp.float32, **kwargs)


def optimizer_config(config: ml_collections.ConfigDict, total_steps: int) -> OptimizerConfig:
    """The `optim` section as an OptimizerConfig for a run of `total_steps` train steps."""
    o = config.optim
    accum = int(config.train.grad_accum_steps)
    return OptimizerConfig(
        learning_rate=float(o.learning_rate), warmup_steps=int(o.warmup_steps),
        total_steps=math.ceil(total_steps / accum), end_lr_factor=float(o.end_lr_factor),
        b1=float(o.b1), b2=float(o.b2), eps=float(o.eps), weight_decay=float(o.weight_decay),
        clip_grad_norm=float(o.clip_grad_norm), grad_accum_steps=accum)


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


def _write_json(path: Path, obj: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_same_run(config_file: Path, config: ml_collections.ConfigDict) -> None:
    """A checkpoint resumes only under the config that wrote it (logging and intervals may change)."""
    if not config_file.is_file():
        return
    old = _flatten(json.loads(config_file.read_text()))
    new = _flatten(json.loads(json.dumps(config.to_dict())))
    differ = sorted(k for k in old.keys() | new.keys()
                    if k.split(".")[0] in RUN_DEFINING and old.get(k) != new.get(k))
    if differ:
        raise InputError(config_file, f"this work dir holds a checkpoint of another run (config "
                         f"differs in {', '.join(differ)}); use a new --workdir or the same config")


def _result(record: dict, total: int, step: int, workdir: Path, best: tuple | None) -> dict:
    result = dict(record)
    result.update({"num_train_steps": total, "stopped_at_step": step, "workdir": str(workdir)})
    if best is not None:
        result.update({"best_step": best[0], "best_val_recon": best[1]})
    return result


def train(
    config: ml_collections.ConfigDict,
    data: str | os.PathLike | PreparedDataset,
    workdir: str | os.PathLike,
    *,
    stop_at_step: int | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume) the run of `config` on a prepared dataset in `workdir`; return final metrics.

    `stop_at_step` ends this call early (after a checkpoint) without changing the run's length or its
    learning-rate schedule: calling again with the same work dir continues it. Raises
    `NonFiniteLossError` on a NaN/inf loss, gradient or parameter, keeping the last good checkpoint.
    """
    workdir = Path(workdir).absolute()
    ds = data if isinstance(data, PreparedDataset) else load_prepared(data)
    if len(ds.test) == 0:
        raise InputError(ds.path, "the test split is empty; prepare with --test-fraction > 0")
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
    G, K = ds.mask.shape
    total = num_train_steps(batch_size, int(config.train.num_steps),
                            float(config.train.num_epochs), len(ds.train))
    end = total if stop_at_step is None else min(total, int(stop_at_step))

    model = model_from_config(config, ds.num_classes)
    schedule = get_schedule(config.diffusion.schedule, int(config.diffusion.num_steps))
    prediction = get_prediction(config.diffusion.prediction)
    opt_cfg = optimizer_config(config, total)
    tx = make_optimizer(opt_cfg)

    init_key, train_key, eval_key = jax.random.split(jax.random.key(int(config.seed)), 3)
    train_key, eval_key = put_replicated((train_key, eval_key), mesh)
    abstract = abstract_train_state(model, tx, (G, K), mesh)
    shardings = jax.tree.map(lambda a: a.sharding, abstract)

    store = CheckpointStore(workdir / CHECKPOINT_DIR, keep=int(config.checkpoint.keep),
                            async_save=bool(config.checkpoint.async_save))
    if store.latest_step() is not None:
        try:
            _check_same_run(workdir / CONFIG_FILE, config)
        except InputError:
            store.close()
            raise
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
        _write_json(workdir / CONFIG_FILE, config.to_dict())
        _write_json(workdir / RUN_FILE, {
            "data_dir": str(Path(ds.path).absolute()), "feature_shape": [G, K],
            "num_classes": ds.num_classes, "class_names": list(ds.class_names),
            "num_train": len(ds.train), "num_test": len(ds.test), "num_train_steps": total,
            "num_devices": mesh.size, "num_processes": jax.process_count(),
            "jax_version": jax.__version__})

    writer = None
    pbar = None
    try:
        if store.latest_step() is not None:
            state = store.restore(abstract)
        else:
            state = create_train_state(model, tx, init_key, (G, K), mesh)
        start = int(jax.device_get(state.step))
        if main:
            truncate_after(workdir / METRICS_FILE, start)
        writer = MetricsWriter(workdir, enabled=main, tensorboard=bool(config.log.tensorboard))

        if start >= end:  # nothing left to do: report what the run already logged
            records = [r for r in read_metrics(workdir / METRICS_FILE) if r.get("step") == start]
            return _result(records[-1] if records else {"step": start}, total, start, workdir,
                           store.best_value())

        train_data = put_data(ds.train.features, ds.train.labels, mesh)
        test_data = put_data(ds.test.features, ds.test.labels, mesh)
        step_fn = make_train_step(
            model, schedule, prediction, ds.mask, tx=tx, lr_schedule=make_lr_schedule(opt_cfg),
            batch_size=batch_size, p_uncond=float(config.train.p_uncond),
            num_classes=ds.num_classes, ema_decay=float(config.train.ema_decay),
            grad_accum_steps=opt_cfg.grad_accum_steps, mesh=mesh)
        eval_fn = make_eval_fn(model, schedule, prediction, ds.mask,
                               batch_size=int(config.eval.batch_size),
                               num_rows=test_data["features"].shape[0], mesh=mesh)
        params_field = "ema_params" if config.eval.use_ema else "params"
        evaluate = jit_eval_fn(eval_fn, getattr(shardings, params_field), mesh)
        all_finite = jax.jit(lambda tree: jnp.all(jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)])))

        t0 = time.perf_counter()
        compiled = jit_train_step(step_fn, shardings, mesh).lower(state, train_data,
                                                                   train_key).compile()
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
        while step < end:
            # Dispatch this step before reading the last one's metrics, so the device never idles
            # on the host; the read also blocks every step, which old CPU multi-device runtimes need.
            with jax.transfer_guard("disallow"):
                state, metrics = compiled(state, train_data, train_key)
            step += 1
            if pending is not None:
                window.add(read(*pending))
            pending = (step, metrics)
            do_eval = step % eval_every == 0 or step == end
            do_ckpt = step % ckpt_every == 0 or step == end
            if not (do_eval or do_ckpt or step % log_every == 0):
                pbar.update(1)
                continue
            window.add(read(*pending))
            pending = None
            scalars = window.summary(batch_size)
            scalars["epoch"] = step * batch_size / len(ds.train)
            if compile_time is not None:
                scalars["compile_time_s"], compile_time = compile_time, None
            if do_eval:
                val = jax.device_get(evaluate(getattr(state, params_field), test_data, eval_key))
                scalars.update({k: float(v) for k, v in val.items()})
            if do_ckpt:
                # A finite loss at this step does not rule out an update that overflowed.
                if not bool(all_finite(state.params)):
                    raise nonfinite(step, "a parameter")
                store.save(state)
            if do_eval and np.isfinite(scalars["val_recon"]):
                store.save_best(state, scalars["val_recon"])
            record = writer.write(step, scalars)
            pbar.set_postfix(loss=f"{scalars['loss']:.4f}", refresh=False)
            pbar.update(1)
            window = _Window()  # restarted after eval and checkpoint: they are not step time

        store.wait_until_finished()
        return _result(record, total, step, workdir, store.best_value())
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
    """`genodiff train`: load `config_path` (experiments/NAME.py[:ARG]; default experiments/demo.py),
    start jax.distributed if the config asks for it, train on `data_dir` in `workdir` (resuming if
    it holds a checkpoint), and return the final metrics."""
    config = load_config(config_path or DEFAULT_CONFIG)
    if overrides:
        apply_overrides(config, overrides)
    d = config.distributed
    maybe_initialize_distributed(d.coordinator_address or None, d.num_processes, d.process_id)
    return train(config, data_dir, workdir, stop_at_step=stop_at_step, progress=progress)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """What a sampler needs from a work dir: the model, its parameters and the run's settings."""

    model: nn.Module
    params: Any
    step: int
    config: ml_collections.ConfigDict
    run: dict

    @property
    def feature_shape(self) -> tuple[int, int]:
        return tuple(self.run["feature_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.run["num_classes"])


def load_trained(workdir: str | os.PathLike, *, which: str = "best", ema: bool = True) -> TrainedModel:
    """The model of a run and its best (or latest) EMA (or raw) parameters."""
    workdir = Path(workdir)
    for name in (CONFIG_FILE, RUN_FILE):
        if not (workdir / name).is_file():
            raise InputError(workdir, f"not a training work dir (no {name}); run `genodiff train`")
    config = ml_collections.ConfigDict(json.loads((workdir / CONFIG_FILE).read_text()))
    run = json.loads((workdir / RUN_FILE).read_text())
    model = model_from_config(config, int(run["num_classes"]))
    G, K = run["feature_shape"]
    try:
        params, step = restore_params(workdir / CHECKPOINT_DIR, abstract_params(model, G, K),
                                      which=which, ema=ema)
    except FileNotFoundError as e:
        raise InputError(workdir, str(e)) from e
    return TrainedModel(model, params, step, config, run)
