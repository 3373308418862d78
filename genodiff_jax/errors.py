"""The one error type that the command line turns into a clean one-line message."""

from __future__ import annotations

import os
from pathlib import Path


class InputError(Exception):
    """Bad user input: names the offending file and the problem, in one line."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


def require_file(path: str | os.PathLike) -> None:
    """InputError unless `path` is an existing file (a folder is named as one)."""
    if Path(path).is_dir():
        raise InputError(path, "is a directory, not a file")
    if not Path(path).is_file():
        raise InputError(path, "file not found")
