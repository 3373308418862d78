"""Config files: every shipped config loads and passes the schema check; a typo'd key, a value of
the wrong type or an out-of-range value is an InputError naming the file and the dotted key, from a
file anywhere (a user's config starts from ours with `from experiments import ...`) and from
overrides. Loading only: nothing here trains."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from genodiff_jax import cli
from genodiff_jax.errors import InputError
from genodiff_jax.train.config import (
    apply_overrides,
    load_config,
    model_from_config,
    process_from_config,
)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# The arguments each shipped config takes ("" for none); any other file takes "" and "smoke".
VARIANTS = {"base.py": ("",)}
SHIPPED = [f"{path.name}{':' + arg if arg else ''}"
           for path in sorted(EXPERIMENTS.glob("*.py"))
           if path.name != "__init__.py" and not path.name.startswith("study_")
           for arg in VARIANTS.get(path.name, ("", "smoke"))]
# Study files (`genodiff sweep --train`): a base config and a grid of overrides, not a config.
STUDIES = [f"{path.name}{':' + arg if arg else ''}"
           for path in sorted(EXPERIMENTS.glob("study_*.py")) for arg in ("", "smoke")]


@pytest.mark.parametrize("spec", SHIPPED)
def test_every_shipped_config_passes_the_schema_and_builds(spec: str):
    config = load_config(f"experiments/{spec}")
    assert config.is_locked
    # What the check let through is what the code takes: the process and the model build.
    process_from_config(config)
    model_from_config(config, num_classes=3)


@pytest.mark.parametrize("spec", STUDIES)
def test_every_cell_of_every_shipped_study_builds(spec: str):
    from genodiff_jax.sweep.study import _sweep_settings, load_study
    from genodiff_jax.train.config import apply_overrides

    study = load_study(f"experiments/{spec}")
    _sweep_settings(study.sweep)
    for _, overrides in study.cells():
        config = load_config(study.base)
        apply_overrides(config, overrides)
        process_from_config(config)
        model_from_config(config, num_classes=3)


def test_every_config_file_is_covered():
    assert {s.split(":")[0] for s in SHIPPED} >= {"base.py", "demo.py", "masked.py",
                                                  "demo_masked.py", "lct_masked.py"}
    assert "study_schedules.py" in {s.split(":")[0] for s in STUDIES}


def write_config(tmp_path: Path, body: str, start: str = "demo", arg: str = "smoke") -> Path:
    """A user's config outside experiments/: ours (`start`) plus `body` (lines on `c`)."""
    path = tmp_path / "my_config.py"
    path.write_text(textwrap.dedent(f"""\
        from experiments import {start}


        def get_config(arg=None):
            c = {start}.get_config({arg!r})
        """) + textwrap.indent(textwrap.dedent(body), "    ") + "    return c\n")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(InputError) as e:
        load_config(str(path))
    assert e.value.path == str(path)
    return e.value.problem


def test_a_config_outside_experiments_starts_from_ours(tmp_path: Path):
    path = write_config(tmp_path, """\
        c.train.num_steps = 3
        c.diffusion.schedule_kwargs = {"s": 0.01}
        c.sampling.options.eta = 0.5
        c.model.kwargs.attention_impl = "xla"
        """)
    config = load_config(str(path))
    assert config.train.num_steps == 3 and config.diffusion.schedule_kwargs.s == 0.01
    assert config.model.kwargs.attention_impl == "xla"
    assert config.model.kwargs.base_channels == 8  # demo's smoke model
    path = write_config(tmp_path, "c.train.num_steps = 7\n", start="base", arg=None)
    assert load_config(str(path)).train.num_steps == 7


def test_a_typo_is_an_error_naming_the_file_and_the_key(tmp_path: Path, capsys):
    path = write_config(tmp_path, "c.train.num_stepz = 3\n")
    problem = load_error(path)
    assert "train.num_stepz" in problem and "did you mean train.num_steps" in problem
    # The command line: one line, exit status 2, before any data is read.
    code = cli.main(["train", "--config", str(path), "--data", str(tmp_path / "none"),
                     "--workdir", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"genodiff train: error: {path}: unknown config key train.num_stepz")


@pytest.mark.parametrize("start,body,key", [
    ("demo", "c.trian = {'num_steps': 3}\n", "trian"),
    ("demo", "c.diffusion.window = 256\n", "diffusion.window"),  # a masked field, Gaussian run
    ("masked", "c.diffusion.widow = 256\n", "diffusion.widow"),
    ("masked", "c.diffusion.prediction = 'eps'\n", "diffusion.prediction"),  # Gaussian only
    ("demo", "c.model.kwargs.base_chanels = 8\n", "model.kwargs.base_chanels"),
    ("demo", "c.model.kwargs.dtype = 'bfloat16'\n", "model.kwargs.dtype"),  # set by model.dtype
])
def test_unknown_keys_in_sections_and_process_fields(tmp_path, start, body, key):
    assert f"unknown config key {key} " in load_error(write_config(tmp_path, body, start))


@pytest.mark.parametrize("start,body,key", [
    ("demo", "c.train.num_steps = -1\n", "train.num_steps"),
    ("demo", "c.train.batch_size = 0\n", "train.batch_size"),
    ("demo", "c.diffusion.num_steps = 0\n", "diffusion.num_steps"),
    ("masked", "c.diffusion.num_steps = 0\n", "diffusion.num_steps"),
    ("demo", "c.train.num_steps = 0\nc.train.num_epochs = 0.0\n", "train.num_epochs"),
    ("demo", "c.eval.every_steps = 0\n", "eval.every_steps"),
    ("demo", "c.train.p_uncond = 1.5\n", "train.p_uncond"),
    ("masked", "c.train.early_stopping.patience = -2\n", "train.early_stopping.patience"),
    ("demo", "c.train.max_minutes = -1.0\n", "train.max_minutes"),
    # Sections built anew, where ml_collections has no type to keep:
    ("masked", "c.sampling = {'sampler': 'ancestral', 'steps': '5'}\n", "sampling.steps"),
    ("masked", "c.diffusion = {'process': 'masked', 'window': 256.5}\n", "diffusion.window"),
    ("demo", "c.eval = {'use_ema': 1}\n", "eval.use_ema"),
    ("demo", "c.train.num_steps = '3'\n", "num_steps"),  # ml_collections' own type check
    ("demo", "c.model.dtype = 'bfloat61'\n", "model.dtype"),
    ("demo", "c.model.ops = 'fastest'\n", "model.ops"),
    ("panel", "c.diffusion.panel_match = 'nearest'\n",
     "diffusion.panel_match: unknown panel match 'nearest'; known: agreement, rare_sharing"),
    # issue 27: values that would give a wrong run, not an error
    ("demo", "c.optim.learning_rate = 0.0\n", "optim.learning_rate must be > 0, got 0.0"),
    ("masked", "c.optim.learning_rate = -1e-3\n", "optim.learning_rate must be > 0"),
    ("demo", "c.optim.b2 = 1.0\n", "optim.b2 must be in [0, 1), got 1.0"),
    ("demo", "c.optim.eps = 0.0\n", "optim.eps must be > 0"),
    ("demo", "c.train.p_uncond = float('nan')\n", "train.p_uncond must be a finite number"),
    ("demo", "c.train.max_minutes = float('inf')\n", "train.max_minutes must be a finite"),
    ("demo", "c.sampling.guidance = 1e9\n", "sampling.guidance must be in [-1, 100], got 1"),
    ("demo", "c.sampling.options.eta = float('nan')\n", "sampling.options.eta must be a finite"),
])
def test_bad_values_are_errors_naming_the_file_and_the_key(tmp_path, start, body, key):
    assert key in load_error(write_config(tmp_path, body, start))


def test_unknown_process_or_model_is_an_error_naming_the_file(tmp_path: Path):
    assert "unknown diffusion process 'maskd'" in load_error(
        write_config(tmp_path, "c.diffusion.process = 'maskd'\n"))
    assert "unknown model 'mlp_cnnn'" in load_error(
        write_config(tmp_path, "c.model.name = 'mlp_cnnn'\n"))


@pytest.mark.parametrize("body,where,message", [
    ("len(3)\n", "get_config raised TypeError at line", "object of type 'int' has no len()"),
    ("c.seed = (\n", "line", "syntax error"),
    ("1 / 0\n", "get_config raised ZeroDivisionError at line", "division by zero"),
])
def test_a_config_file_that_does_not_run_is_one_line_naming_it(tmp_path: Path, body, where,
                                                                message):
    error = load_error(write_config(tmp_path, body))
    assert "\n" not in error and where in error and message in error, error
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('not ready')\n")
    with pytest.raises(InputError, match=r"broken.py: loading it raised RuntimeError at line 1: "
                                         "not ready"):
        load_config(str(path))


def test_overrides_are_checked_against_the_schema():
    config = load_config("experiments/demo.py:smoke")
    apply_overrides(config, {"train.num_steps": 3, "diffusion.schedule_kwargs.s": 0.01,
                             "sampling.options": {"eta": 0.5, "clip_x0": "data"},
                             "model.kwargs.attention_impl": "xla"})
    assert config.train.num_steps == 3 and config.diffusion.schedule_kwargs.s == 0.01
    assert config.sampling.options.eta == 0.5 and config.is_locked
    process_from_config(config)

    for overrides, expected in [
        ({"train.num_stepz": 3}, "unknown config key train.num_stepz (did you mean "
                                 "train.num_steps?"),
        ({"trian.num_steps": 3}, "unknown config key trian"),
        ({"diffusion.window": 256}, "unknown config key diffusion.window"),
        ({"model.kwargs.base_chanels": 8}, "unknown config key model.kwargs.base_chanels"),
        ({"train.num_steps": -1}, "train.num_steps must be >= 0, got -1"),
        ({"train.num_steps": "x"}, "train.num_steps"),
        ({"seed.x": 1}, "seed"),
    ]:
        with pytest.raises(InputError) as e:
            apply_overrides(load_config("experiments/demo.py:smoke"), overrides)
        assert e.value.path is None and expected in e.value.problem, (overrides, e.value)


def test_overrides_may_set_a_process_field_the_config_leaves_out(tmp_path: Path):
    path = write_config(tmp_path, """\
        c.diffusion = {"process": "masked", "window": 256, "overlap": 32, "num_steps": 8}
        """, start="masked")
    config = load_config(str(path))
    assert "t_min" not in config.diffusion
    apply_overrides(config, {"diffusion.t_min": 1e-3})
    assert process_from_config(config).t_min == 1e-3


def test_a_registered_process_brings_its_own_diffusion_keys(tmp_path: Path):
    """A research fork's process: its dataclass fields are the diffusion keys, nothing else."""
    import dataclasses

    from genodiff_jax.diffusion import PROCESSES, register_process

    @dataclasses.dataclass(frozen=True)
    class Toy:
        num_steps: int = 10
        width: float = 1.0

    register_process("toy_for_test_configs")(Toy)
    try:
        path = write_config(tmp_path, "c.diffusion = {'process': 'toy_for_test_configs', "
                                      "'width': 2}\n")
        assert load_config(str(path)).diffusion.width == 2
        path = write_config(tmp_path, "c.diffusion = {'process': 'toy_for_test_configs', "
                                      "'schedule_kwargs': {}}\n")
        assert "unknown config key diffusion.schedule_kwargs" in load_error(path)
        path = write_config(tmp_path, "c.diffusion = {'process': 'toy_for_test_configs', "
                                      "'width': 'wide'}\n")
        assert "diffusion.width: expected a number" in load_error(path)
    finally:
        del PROCESSES["toy_for_test_configs"]
