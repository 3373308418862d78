"""Issue 28: the package's shape, kept by tests. The layers and the absence of import cycles are
import-linter contracts (`.importlinter` at the repository root); a function takes at most 10
parameters (settings objects carry the rest); a module outside `bench/` has at most 400 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_PARAMETERS = 10


def test_layers_never_climb_and_no_package_has_an_import_cycle():
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's package, whatever is installed
    done = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_no_function_of_the_package_takes_more_than_ten_parameters():
    wide = []
    for path in sorted((ROOT / "genodiff_jax").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                n = len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg) + bool(a.kwarg)
                if n > MAX_PARAMETERS:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n})")
    assert not wide, wide


def test_core_modules_have_at_most_400_lines():
    long = [f"{p.relative_to(ROOT)} ({n})" for p in sorted((ROOT / "genodiff_jax").rglob("*.py"))
            if "bench" not in p.parts and (n := len(p.read_text().splitlines())) > 400]
    assert not long, long
