"""Outputs that never lose data (`atomic`), leftovers of killed runs, and a sampler that diverges
named by its step: the library side of issue 15 (the command-line cases are in test_pipeline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from genodiff_jax.atomic import MARKER, atomic_dir, atomic_file, check_output, write_marker
from genodiff_jax.diffusion import GaussianProcess
from genodiff_jax.errors import InputError
from genodiff_jax.sampling import Denoiser, SamplingSettings, generate
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
        generate(Denoiser(apply_fn, {"w": w}), process=process,
                 settings=SamplingSettings("ddim", batch_size=4, mesh=make_mesh(1)),
                 labels_N=np.zeros(6, np.int32), shape=(4, 2))
    ts = np.arange(10)[::-1]  # every step: grid indices 9, 8, ..., 0
    expected = 0 if cut is None else int(np.argmax(times[ts] < cut))
    assert info.value.step == expected and "in 6 of 6 rows" in str(info.value)


# -- issue 27: replacing an earlier output deletes only what genodiff wrote ----------------------

def test_the_marker_lists_what_genodiff_wrote_and_nothing_else_is_ever_deleted(tree):
    write_into(tree / "cohort")
    with atomic_dir(tree / "cohort", "cohort") as tmp:  # a replacement with a nested file
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.txt").write_text("new")
    marker = (tree / "cohort" / MARKER).read_text()
    assert '"sub/"' in marker and '"sub/part.txt"' in marker
    write_into(tree / "cohort")  # only listed files inside: replaced without a flag
    (tree / "cohort" / "notes.txt").write_text("a user's notes")
    (tree / "cohort" / "mine").mkdir()
    (tree / "cohort" / "mine" / "a.txt").write_text("mine")
    before = snapshot(tree)
    with pytest.raises(InputError, match=r"cohort/mine: was not written by genodiff \(and 1 "
                                         r"more\); replacing .* would delete it"):
        write_into(tree / "cohort")
    assert snapshot(tree) == before
    write_into(tree / "cohort", overwrite=True)  # the user gives them up
    assert not (tree / "cohort" / "notes.txt").exists()


@pytest.mark.parametrize("where", ["cohort/run", "cohort/deep/er/run"])
def test_a_work_dir_anywhere_below_out_is_refused_even_with_overwrite(tree, where):
    write_into(tree / "cohort")
    (tree / where).parent.mkdir(parents=True, exist_ok=True)
    os.replace(tree / "work", tree / where)  # an unmarked one: recognised by its checkpoints
    (tree / "other").mkdir()
    (tree / "other" / "run").mkdir()
    write_marker(tree / "other" / "run", "workdir")  # a marked one in someone else's folder
    before = snapshot(tree)
    for out, overwrite in [("cohort", False), ("cohort", True), ("other", True)]:
        with pytest.raises(InputError, match="holds a training work dir, .*genodiff never "
                                             "deletes one, even with --overwrite"):
            write_into(tree / out, overwrite=overwrite)
    assert snapshot(tree) == before


def test_an_output_marker_that_lists_no_files_is_not_replaced_without_overwrite(tree):
    (tree / "old").mkdir()
    (tree / "old" / "result.txt").write_text("old")
    write_marker(tree / "old", "cohort")  # as genodiff wrote markers before they listed files
    with pytest.raises(InputError, match="marker does not list its files"):
        write_into(tree / "old")
    write_into(tree / "old", overwrite=True)
    assert (tree / "old" / "result.txt").read_text() == "new"


@pytest.mark.parametrize("out", ["file.txt/sub", "file.txt/a/b"])
def test_out_below_a_regular_file_is_one_clean_error(tree, out):
    before = snapshot(tree)
    with pytest.raises(InputError, match="file.txt: is a file, so .* cannot be created below it"):
        write_into(tree / out, overwrite=True)
    assert snapshot(tree) == before


def test_a_read_only_output_folder_is_one_clean_error(tree, monkeypatch):
    import errno
    import tempfile

    (tree / "ro").mkdir()
    write_into(tree / "ro" / "cohort")
    os.chmod(tree / "ro", 0o555)
    if os.geteuid() == 0:  # root writes into a read-only folder: fail as a read-only mount would
        real = tempfile.mkdtemp

        def mkdtemp(*args, dir=None, **kwargs):
            if Path(dir) == tree / "ro":
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    before = snapshot(tree)
    try:
        for out in ["new", "cohort", "new/deeper"]:
            with pytest.raises(InputError, match="ro: cannot write here"):
                write_into(tree / "ro" / out)
    finally:
        os.chmod(tree / "ro", 0o755)
    assert snapshot(tree) == before


def test_output_folders_honour_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_into(tmp_path / "cohort")
    finally:
        os.umask(previous)
    assert (tmp_path / "cohort").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "cohort" / "result.txt").stat().st_mode & 0o777 == 0o644


def test_ctrl_c_while_a_cohort_is_written_leaves_at_once_and_keeps_the_earlier_one(tmp_path,
                                                                                   monkeypatch):
    """Issue 27: Ctrl-C while the VCF is compressed. Today the writer went on to compress the
    rest of what it held (40 s of a 6000 x 10000 cohort); now nothing more is compressed, the
    earlier cohort is untouched and no temporary is left."""
    from Bio import bgzf

    from genodiff_jax.data import io
    from genodiff_jax.sampling.output import CohortTable, write_cohort
    from genodiff_jax.sampling.settings import OutputSettings

    n, s = 300, 4000  # a 4096-variant chunk of text: 4.8 MB, 74 BGZF blocks
    rng = np.random.default_rng(0)
    variants = io.Variants(np.array(["1"] * s), np.arange(1, s + 1, dtype=np.int64) * 10,
                           np.array([f"rs{i}" for i in range(s)]), np.array(["A"] * s),
                           np.array(["G"] * s))
    out = tmp_path / "cohort"

    def write(tokens, overwrite=False):
        write_cohort(OutputSettings(out, overwrite), CohortTable(variants, ["a", "b"], "pop"),
                     rng.integers(0, 2, len(tokens)), tokens)

    write(rng.integers(0, 2, (3, 2, s), dtype=np.int8))
    before = snapshot(tmp_path)
    blocks, block = [], bgzf.BgzfWriter._write_block

    def write_block(self, data):
        blocks.append(len(data))
        if len(blocks) == 5:
            raise KeyboardInterrupt
        return block(self, data)

    monkeypatch.setattr(bgzf.BgzfWriter, "_write_block", write_block)
    with pytest.raises(KeyboardInterrupt):
        write(rng.integers(0, 2, (n, 2, s), dtype=np.int8), overwrite=True)
    assert len(blocks) == 5  # nothing compressed after the interrupt
    assert snapshot(tmp_path) == before


# -- issue 27: options that would give a wrong cohort are refused ----------------------------------

@pytest.mark.parametrize("family,sampler,options,message", [
    ("gaussian", "ddim", {"eta": float("nan")}, "eta must be a finite number, got nan"),
    ("gaussian", "ddim", {"eta": 1.5}, r"eta must be in \[0.0, 1.0\], got 1.5"),
    ("gaussian", "unipc", {"order": 7}, r"order must be in \[1, 3\], got 7"),
    ("gaussian", "unipc", {"lower_order_final": "maybe"}, "lower_order_final must be True or"),
    ("gaussian", "dpmpp", {"clip_x0": -1.0}, "clip_x0 must be > 0.0"),
    ("masked", "ancestral", {"min_p": 1.0}, r"min_p must be in \[0.0, 1.0\), got 1.0"),
    ("masked", "ancestral", {"min_p": -0.1}, "min_p must be in"),
    ("masked", "ancestral", {"temperature": float("inf")}, "temperature must be a finite"),
])
def test_out_of_range_sampler_options_are_refused(family, sampler, options, message):
    from genodiff_jax.diffusion.masked import MaskedProcess

    process = GaussianProcess("cosine", 10, "eps") if family == "gaussian" else MaskedProcess()
    with pytest.raises(ValueError, match=f"sampler '{sampler}': {message}"):
        process.sampler_options(sampler, options, np.ones(3, np.float32))
    good = {"ddim": {"eta": 1.0}, "unipc": {"order": 3, "lower_order_final": False},
            "dpmpp": {"clip_x0": 2}, "ancestral": {"min_p": 0.5, "temperature": 0.8}}[sampler]
    assert process.sampler_options(sampler, good, np.ones(3, np.float32)) == good


def test_guidance_and_labels_that_give_a_wrong_cohort_are_refused(capsys):
    from genodiff_jax.sampling.labels import labels_from_spec
    from genodiff_jax.sampling.settings import resolve_sampling

    process = GaussianProcess("cosine", 10, "eps")
    defaults = {"sampler": "ddim", "steps": 0, "guidance": 0.1, "options": {}}
    for w in (1e9, -2.0):
        with pytest.raises(InputError, match=r"--guidance must be in \[-1, 100\]"):
            resolve_sampling(process, defaults, SamplingSettings(guidance=w))
    assert resolve_sampling(process, defaults, SamplingSettings(guidance=-1.0)).guidance == -1.0
    # Within the range but above the measured safe weights: sampled, with a warning.
    assert capsys.readouterr().err == ""
    assert resolve_sampling(process, defaults, SamplingSettings(guidance=30.0)).guidance == 30.0
    assert "guidance 30 is above 10" in capsys.readouterr().err
    with pytest.raises(InputError, match="label counts sum to 0 people"):
        labels_from_spec("AAA=0,BBB=0", None, class_names=["AAA", "BBB"])


def test_a_work_dir_of_the_other_family_is_one_line_not_a_key_error(tmp_path):
    """Resuming (or sampling) a Gaussian run's checkpoints under a masked config: its best
    checkpoints are ranked by val_recon, which the masked family does not log."""
    import types

    from genodiff_jax.train.checkpoint import CheckpointStore

    zeros = {"w": np.zeros(2, np.float32)}
    state = types.SimpleNamespace(step=jnp.int32(3), params=zeros, ema_params=zeros)
    with CheckpointStore(tmp_path / "checkpoints", async_save=False) as store:
        assert store.save_best(state, 0.5)
    with pytest.raises(InputError, match="best: its checkpoints are ranked by val_recon, not "
                                         "val_bits: .* another diffusion family"):
        CheckpointStore(tmp_path / "checkpoints", async_save=False, best_metric="val_bits")


# -- issue 27: impute matches sites by allele ------------------------------------------------------

def test_impute_matches_sites_by_allele_and_reads_no_calls_as_missing(tmp_path):
    from conftest import write_text_vcf

    from genodiff_jax.data import io
    from genodiff_jax.sampling.impute import known_tokens, match_sites

    model = io.Variants(np.array(["1"] * 5), np.array([100, 200, 300, 400, 500]),
                        np.array(["a", "b", "c", "d", "e"]), np.array(["A", "C", "G", "T", "A"]),
                        np.array(["G", "T", "A", "C", "C"]))
    rows = [("1", 100, "a", "A", "G", ["0|1", "./.", "1|1"]),  # as the model, a no-call
            ("1", 200, "b", "T", "C", ["0|1", "1|1", "0|0"]),  # REF/ALT swapped: read flipped
            ("1", 300, "c", "G", "T", ["0|1", "0|1", "0|1"]),  # another ALT: skipped
            ("chr1", 600, "x", "A", "G", ["0|0", "0|1", "1|1"])]  # not a model site
    vcf = write_text_vcf(tmp_path / "v.vcf", ["P0", "P1", "P2"], rows)
    g = io.read_vcf(vcf, haplotypes=True, keep_missing=True, drop_monomorphic=False,
                    progress=False)
    assert g.phased  # `./.` is a missing call, not an unphased one
    match = match_sites(g.variants, model)
    assert (match.n_matched, match.n_flipped, match.n_other_alleles, match.n_absent,
            match.n_not_in_model) == (1, 1, 1, 2, 1)
    known = known_tokens(g, model, match)  # [N, 2, S]
    np.testing.assert_array_equal(known[:, :, 0], [[0, 1], [-1, -1], [1, 1]])
    np.testing.assert_array_equal(known[:, :, 1], [[1, 0], [0, 0], [1, 1]])
    assert np.all(known[:, :, 2:] == -1)
