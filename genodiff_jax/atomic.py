"""Outputs that never lose data: written under a temporary name and renamed only when complete;
an existing path is replaced only when it is an earlier output of the same kind (recognised by a
marker file) or the user says `--overwrite`, and never when it holds one of the command's inputs.

Temporaries are named `.NAME.HOST-PID.RANDOM.tmp` beside the output, so a later run can tell a
killed run's leftovers (same host, process gone) from a live run's and remove them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from genodiff_jax.errors import InputError

MARKER = ".genodiff.json"
# Kinds that are never replaced by another command, even with --overwrite: a training work dir
# holds checkpoints that took hours.
PROTECTED_KINDS = ("workdir",)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def _tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries that a killed run of ours left beside `path` (this host, process gone);
    returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    mine = rf"^\.{re.escape(path.name)}\.{re.escape(_host())}-(\d+)\.[^/]*\.(tmp|old)$"
    pattern = re.compile(mine)
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder genodiff wrote ({"kind": ..., ...}), or None."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "kind" in marker else None


def write_marker(folder: str | os.PathLike, kind: str, **fields) -> None:
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, **fields}, indent=2) + "\n")


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(path: str | os.PathLike, kind: str, *, inputs: Iterable = (),
                 overwrite: bool = False) -> None:
    """InputError unless `path` may become a `kind` output.

    Allowed: a new path, an empty folder, or an earlier output of the same kind (its marker says
    so). With `overwrite`: also a file or a folder of other files. Never: a path that holds an
    input of the command, or a training work dir."""
    path = Path(path)
    target = path.resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if _contains(target, source):
            where = "is" if target == source else "holds"
            raise InputError(path, f"{where} this command's input {given}; writing here would "
                                   "delete it: choose another output path")
    if not path.exists() and not path.is_symlink():
        return
    hint = "choose another output path or pass --overwrite"
    if not path.is_dir():
        if overwrite:
            return
        raise InputError(path, f"is an existing file, not a folder: {hint}")
    marker = read_marker(path)
    found = marker["kind"] if marker else None
    if found in PROTECTED_KINDS or (found is None and (path / "checkpoints").is_dir()):
        raise InputError(path, "is a training work dir; genodiff never replaces one: choose "
                               "another output path")
    if found == kind or overwrite or not any(path.iterdir()):
        return
    what = f"a genodiff {found} folder" if found else "a folder of files genodiff did not write"
    raise InputError(path, f"already exists and is {what}: {hint}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`,
    on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_tag()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the finished file gets the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, kind: str, *, inputs: Iterable = (),
               overwrite: bool = False, **marker) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it gets a `kind` marker and becomes
    `path`, on error it is removed. `path` is checked first and again at the end
    (`check_output`), so an existing output is replaced only where that check allows."""
    path = Path(path)
    inputs = tuple(inputs)
    check_output(path, kind, inputs=inputs, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_tag()}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        write_marker(tmp, kind, **marker)
        check_output(path, kind, inputs=inputs, overwrite=overwrite)
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_tag()}.", suffix=".old",
                                        dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if path.exists() or path.is_symlink():
                path.unlink()  # a file, allowed by overwrite
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
