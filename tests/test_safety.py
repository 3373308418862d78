"""Outputs that never lose data (`atomic`), leftovers of killed runs, and a sampler that diverges
named by its step: the library side of issue 15 (the command-line cases are in test_pipeline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.atomic import MARKER, atomic_dir, atomic_file, check_output, write_marker
from genodiff_jax.diffusion import GaussianProcess
from genodiff_jax.errors import InputError
from genodiff_jax.sampling import generate
from genodiff_jax.sampling.cohort import NonFiniteSampleError
from genodiff_jax.sharding import make_mesh


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (hidden ones too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def write_into(path: Path, kind: str = "cohort", **kwargs) -> None:
    with atomic_dir(path, kind, **kwargs) as tmp:
        (tmp / "result.txt").write_text("new")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "base.vcf").write_text("##fileformat=VCFv4.2\n")
    (tmp_path / "inputs" / "notes.txt").write_text("someone's notes")
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "work" / "checkpoints").mkdir(parents=True)
    (tmp_path / "work" / "run.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("out,inputs,overwrite,message", [
    ("inputs", ["inputs/base.vcf"], True, "holds this command's input"),
    ("inputs/base.vcf", ["inputs/base.vcf"], True, "is this command's input"),
    ("inputs", [], False, "a folder of files genodiff did not write: choose another output "
                          "path or pass --overwrite"),
    ("file.txt", [], False, "is an existing file, not a folder"),
    ("work", [], True, "is a training work dir; genodiff never replaces one"),
])
def test_an_output_that_would_lose_data_is_refused_and_nothing_changes(tree, out, inputs,
                                                                       overwrite, message):
    before = snapshot(tree)
    with pytest.raises(InputError, match=message):
        write_into(tree / out, inputs=[tree / i for i in inputs], overwrite=overwrite)
    assert snapshot(tree) == before
    assert not [p for p in tree.iterdir() if p.name.startswith(".")]  # no temporary left


def test_our_own_output_is_replaced_and_overwrite_replaces_a_foreign_one(tree):
    write_into(tree / "cohort")
    assert (tree / "cohort" / MARKER).is_file()
    (tree / "cohort" / "result.txt").write_text("old")
    write_into(tree / "cohort")  # an earlier output of the same kind: no flag needed
    assert (tree / "cohort" / "result.txt").read_text() == "new"
    with pytest.raises(InputError, match="is a genodiff cohort folder"):
        write_into(tree / "cohort", kind="report")  # another command's output
    write_into(tree / "inputs", overwrite=True)
    assert sorted(p.name for p in (tree / "inputs").iterdir()) == [MARKER, "result.txt"]
    write_into(tree / "file.txt", overwrite=True)
    assert (tree / "file.txt" / "result.txt").is_file()
    assert sorted(p.name for p in tree.iterdir()) == ["cohort", "file.txt", "inputs", "work"]


def test_a_work_dir_marker_protects_even_an_empty_looking_folder(tmp_path):
    (tmp_path / "w").mkdir()
    write_marker(tmp_path / "w", "workdir")
    with pytest.raises(InputError, match="never replaces one"):
        check_output(tmp_path / "w", "cohort", overwrite=True)


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_a_killed_runs_temporaries_are_removed_by_the_next_run_and_no_others(tmp_path):
    """Temporaries are `.NAME.HOST-PID.RANDOM.tmp`: a dead process's of this host go; a live
    process's (another run writing now) and anything else stay."""
    from genodiff_jax.atomic import _host

    dead, live = _dead_pid(), os.getpid()
    stale_dir = tmp_path / f".out.{_host()}-{dead}.abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "half.vcf.gz").write_bytes(b"\x1f\x8b")
    stale_file = tmp_path / f".out.{_host()}-{dead}.def456.old"
    stale_file.write_text("x")
    running = tmp_path / f".out.{_host()}-{live}.ghi789.tmp"
    running.mkdir()
    other_host = tmp_path / f".out.elsewhere-{dead}.jkl012.tmp"
    other_host.mkdir()
    unrelated = tmp_path / ".out.notes"
    unrelated.write_text("keep")
    write_into(tmp_path / "out")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["out", running.name, other_host.name, unrelated.name])
    with atomic_file(tmp_path / "table.tsv") as tmp:  # files clean up their own kind too
        tmp.write_text("a\n")
    stale = tmp_path / f".table.tsv.{_host()}-{dead}.x.tmp"
    stale.write_text("half")
    with atomic_file(tmp_path / "table.tsv") as tmp:
        tmp.write_text("b\n")
    assert not stale.exists() and (tmp_path / "table.tsv").read_text() == "b\n"


@pytest.mark.parametrize("cut_index", [None, 3])
def test_a_sampler_that_diverges_is_an_error_naming_the_first_bad_step(cut_index):
    """A model whose output turns NaN below some noise level: generate refuses the cohort and
    names the first sampler step (0-based) that produced a NaN; NaN weights fail at step 0."""
    process = GaussianProcess("cosine", 10, "eps")
    times = np.asarray(process.model_time(jnp.arange(10)))
    cut = None if cut_index is None else (times[cut_index] + times[cut_index + 1]) / 2

    def apply_fn(variables, x, t, y, train=False):
        out = variables["params"]["w"] * x
        return out if cut is None else jnp.where((t < cut)[:, None, None], jnp.nan, out)

    w = jnp.float32(0.1 if cut is not None else jnp.nan)
    with pytest.raises(NonFiniteSampleError, match="NaN or inf from sampler step") as info:
        generate(apply_fn, {"w": w}, process=process, sampler="ddim", steps=None,
                 labels_N=np.zeros(6, np.int32), shape=(4, 2), key=jax.random.key(0),
                 mesh=make_mesh(1), batch_size=4)
    ts = np.arange(10)[::-1]  # every step: grid indices 9, 8, ..., 0
    expected = 0 if cut is None else int(np.argmax(times[ts] < cut))
    assert info.value.step == expected and "in 6 of 6 rows" in str(info.value)
