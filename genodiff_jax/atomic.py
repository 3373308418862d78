"""Outputs that never lose data: written under a temporary name and renamed only when complete;
an existing path is replaced only when it is an earlier output of the same kind holding nothing but
what its marker lists (the files genodiff wrote there) or the user says `--overwrite`, and never
when it holds one of the command's inputs or a training work dir, at any depth.

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
    """The marker of a folder genodiff wrote ({"kind": ..., "files": [...], ...}), or None."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and "kind" in marker else None


def write_marker(folder: str | os.PathLike, kind: str, **fields) -> None:
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, **fields}, indent=2) + "\n")


def listing(folder: str | os.PathLike) -> list[str]:
    """Everything below `folder` but its marker: paths relative to it, '/'-separated, folders
    ending in '/' (symbolic links are listed, not followed). A marker's `files`."""
    folder = Path(folder)
    entries = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        entries += [f"{(rel / d).as_posix()}/" for d in dirs]
        entries += [(rel / f).as_posix() for f in files]
    return sorted(e for e in entries if e != MARKER)


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def _below_any(entry: str, folders: set[str]) -> bool:
    """Whether `entry` (a `listing` path) lies inside one of `folders` (`listing` paths)."""
    parts = entry.rstrip("/").split("/")
    return any("/".join(parts[:i]) + "/" in folders for i in range(1, len(parts)))


def _work_dir_in(path: Path) -> Path | None:
    """The first training work dir at or below `path` (its marker says so, or an unmarked
    folder holds `checkpoints/`), or None."""
    for root, dirs, files in os.walk(path):
        marker = read_marker(root) if MARKER in files else None
        if marker is not None and marker["kind"] in PROTECTED_KINDS:
            return Path(root)
        if marker is None and "checkpoints" in dirs:
            return Path(root)
    return None


def _probe(folder: Path, name: str) -> None:
    """InputError unless `folder` takes a new entry (probed by making one: `os.access` says yes
    to root on a read-only mount)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{name}.{_tag()}.", suffix=".tmp", dir=folder))
    except OSError as e:
        raise InputError(folder, f"cannot write here ({e.strerror or e}): choose another "
                                 "output path") from None


def _check_writable(path: Path) -> None:
    """InputError unless `path` can be created (or replaced) where it is: the nearest existing
    path above it is a folder that takes a new entry."""
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise InputError(above, f"is a file, so {path} cannot be created below it: choose "
                                "another output path")
    _probe(above, path.name)


def check_writable_folder(path: str | os.PathLike) -> None:
    """InputError unless `path` is a folder that takes new files (a work dir being resumed) or
    can be made one."""
    path = Path(path)
    if path.is_dir():
        _probe(path, "probe")
    else:
        _check_writable(path)
    if path.is_dir() and not path.is_symlink() and not os.access(path, os.W_OK | os.X_OK):
        # moving a folder elsewhere rewrites its '..' entry, which needs write access to it
        raise InputError(path, "is read-only; genodiff cannot replace it: choose another output "
                               "path or make it writable")


def check_output(path: str | os.PathLike, kind: str, *, inputs: Iterable = (),
                 overwrite: bool = False, merge: bool = False) -> None:
    """InputError unless `path` may become a `kind` output.

    Allowed: a new path, an empty folder, or an earlier output of the same kind that holds only
    what its marker lists (with `merge`, for a command that writes its files into the folder and
    deletes nothing: anything else too). With `overwrite`: also a file or a folder of other files.
    Never: a path that is or holds an input of the command, a folder holding a training work dir
    at any depth, or a place that cannot be written."""
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
    _check_writable(path)
    if not path.exists() and not path.is_symlink():
        return
    hint = "choose another output path or pass --overwrite"
    if not path.is_dir():
        if overwrite:
            return
        raise InputError(path, f"is an existing file, not a folder: {hint}")
    work = _work_dir_in(path)
    if work is not None:
        if work == path:
            raise InputError(path, "is a training work dir; genodiff never replaces one: choose "
                                   "another output path")
        raise InputError(path, f"holds a training work dir, {work}; genodiff never deletes one, "
                               "even with --overwrite: move it out or choose another output path")
    marker = read_marker(path)
    found = marker["kind"] if marker else None
    if overwrite or not any(path.iterdir()):
        return
    if found == kind:
        if merge:
            return
        listed = marker.get("files")
        if not isinstance(listed, list):
            raise InputError(path, f"is an earlier genodiff {kind} folder whose marker does not "
                                   "list its files (an older genodiff wrote it), so what else it "
                                   f"holds cannot be told apart: {hint}")
        extra = [e for e in listing(path) if e not in set(listed)]
        extra = [e for e in extra if not _below_any(e, set(extra))]  # a folder names its files
        if not extra:
            return
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise InputError(path / extra[0].rstrip("/"), f"was not written by genodiff{more}; "
                         f"replacing {path} would delete it: move it out, {hint}")
    what = f"a genodiff {found} folder" if found else "a folder of files genodiff did not write"
    raise InputError(path, f"already exists and is {what}: {hint}")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


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
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the finished file gets the usual mode
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
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the output gets the user's usual mode
    try:
        yield tmp
        write_marker(tmp, kind, files=listing(tmp), **marker)
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
