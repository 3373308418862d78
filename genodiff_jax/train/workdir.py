"""A training work dir's checks and records: whether a call may train in it (a new, empty or
earlier work dir of a run on this dataset, resumed only under the config that wrote it) and what
run.json and metrics.jsonl say about how the run stopped. The layout is in `train.trained`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import ml_collections

from genodiff_jax.atomic import atomic_file, read_marker
from genodiff_jax.data.loader import PreparedDataset
from genodiff_jax.errors import InputError
from genodiff_jax.train.checkpoint import CheckpointStore
from genodiff_jax.train.metrics import METRICS_FILE, annotate, json_value, read_metrics
from genodiff_jax.train.stopping import stop_message
from genodiff_jax.train.trained import CONFIG_FILE, RUN_FILE, WORKDIR_KIND

# Config sections that define the run; the others (eval, checkpoint, log, mesh, distributed,
# sampling) may change between a run and its resumption, and so may the keys that only say when it
# ends (raising them lets a stopped run go on).
RUN_DEFINING = ("seed", "model", "diffusion", "train", "optim")
STOPPING_KEYS = ("train.early_stopping", "train.max_minutes")


def write_json(path: Path, obj: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def flatten(d: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_same_run(config_file: Path, config: ml_collections.ConfigDict) -> None:
    """A checkpoint resumes only under the config that wrote it
    (logging and intervals may change)."""
    if not config_file.is_file():
        return
    old = flatten(json.loads(config_file.read_text()))
    new = flatten(json.loads(json.dumps(config.to_dict())))
    differ = sorted(k for k in old.keys() | new.keys()
                    if k.split(".")[0] in RUN_DEFINING and old.get(k) != new.get(k)
                    and not any(k == s or k.startswith(f"{s}.") for s in STOPPING_KEYS))
    if differ:
        raise InputError(config_file, f"this work dir holds a checkpoint of another run (config "
                         f"differs in {', '.join(differ)}); use a new --workdir or the same config")


def check_workdir(workdir: Path, ds: PreparedDataset) -> None:
    """`workdir` is new, empty or a work dir of a run on this dataset: train never writes into a
    folder of other files (a dataset, a cohort) or resumes a run on another dataset."""
    if not workdir.exists():
        return
    if not workdir.is_dir():
        raise InputError(workdir, "is a file, not a work dir")
    marker = read_marker(workdir)
    ours = (marker or {}).get("kind") == WORKDIR_KIND or (workdir / CONFIG_FILE).is_file()
    if not ours and any(workdir.iterdir()):
        what = f"a genodiff {marker['kind']} folder" if marker else "a folder of other files"
        raise InputError(workdir, f"is {what}, not a training work dir: choose a new --workdir")
    if (workdir / RUN_FILE).is_file():
        recorded = json.loads((workdir / RUN_FILE).read_text()).get("dataset_fingerprint")
        if recorded and ds.fingerprint and recorded != ds.fingerprint:
            raise InputError(workdir, f"this run was trained on another dataset (fingerprint "
                             f"{recorded}, {ds.path} has {ds.fingerprint}); use a new --workdir "
                             "or the run's own dataset")


def run_result(record: dict, total: int, step: int, workdir: Path, store: CheckpointStore) -> dict:
    result = {"stop_reason": None, **record}  # None: paused by stop_at_step, not stopped
    result.update({"num_train_steps": total, "stopped_at_step": step, "workdir": str(workdir)})
    best = store.best_value()
    if best is not None:
        result.update({"best_step": best[0], f"best_{store.best_metric}": best[1]})
    return result


def recorded_stop(workdir: Path) -> dict:
    """run.json's `stop` ({} when the run has not stopped), which a new call keeps until it
    trains on."""
    path = workdir / RUN_FILE
    run = json.loads(path.read_text()) if path.is_file() else {}
    return {"stop": run["stop"]} if isinstance(run, dict) and "stop" in run else {}


def note_stop(workdir: Path, stop: dict | None) -> None:
    """run.json says how the run ended (`stop`; None: it has not, or it goes on)."""
    run = json.loads((workdir / RUN_FILE).read_text())
    if stop is None:
        run.pop("stop", None)
    else:
        run["stop"] = json_value(stop)
    write_json(workdir / RUN_FILE, run)


def report_stopped(workdir: Path, start: int, total: int, store: CheckpointStore,
                    stop: dict | None, main: bool) -> dict:
    """A call with nothing left to train: what the run logged at `start`, and why it had stopped
    (`stop`; None: paused by stop_at_step). A stop its last record lacks (a run from before these
    records, or stopping keys changed since) is written there."""
    path = workdir / METRICS_FILE
    if stop is not None and main:
        records = [r for r in read_metrics(path) if r.get("step") == start]
        if not records or records[-1].get("stop") != json_value(stop):
            annotate(path, start, {"stop_reason": stop["reason"], "stop": stop})
        note_stop(workdir, stop)
    records = [r for r in read_metrics(path) if r.get("step") == start]
    result = run_result(records[-1] if records else {"step": start}, total, start, workdir, store)
    if stop is not None:
        result["stop_reason"] = stop["reason"]
        result["stop"] = {**json_value(stop), "message": stop_message(stop, already=True)}
    return result
