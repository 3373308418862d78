"""`genodiff sweep --train`: a schedule study trains one run per grid cell and sweeps each."""

from __future__ import annotations

import csv
import json

import pytest

from genodiff_jax import cli
from genodiff_jax.errors import InputError
from genodiff_jax.sweep import study as S


@pytest.fixture()
def prepared(tmp_path, small_cohort):
    data = tmp_path / "data"
    assert cli.main(["prepare", "--quiet", "--vcf", str(small_cohort["vcf"]), "--panel",
                     str(small_cohort["panel"]), "--genes", str(small_cohort["bed"]),
                     "--out", str(data)]) == 0
    return data


def test_study_cells_are_the_grid_product():
    study = S.load_study("experiments/study_schedules.py")
    cells = study.cells()
    assert len(cells) == 6 and cells[0][0] == "cosine_eps" and cells[-1][0] == "sigmoid_v"
    assert cells[3][1] == {"train.num_epochs": 50.0, "diffusion.time_input": "t",
                           "diffusion.schedule": "linear", "diffusion.prediction": "v"}


def test_smoke_study_trains_and_sweeps_every_cell(prepared, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["sweep", "--train", "--data", str(prepared), "--study",
            "experiments/study_schedules.py:smoke", "--out", str(out)]
    assert cli.main(args) == 0
    result = json.loads((out / "study.json").read_text())
    assert [c["cell"] for c in result["cells"]] == ["cosine_eps", "linear_eps"]
    for cell in result["cells"]:
        assert (out / "cells" / cell["cell"] / "train" / "checkpoints").is_dir()
        (row,) = cell["sweep"]["cells"]
        assert row["sampler"] == "ddim" and row["steps"] == 5
        assert -1 <= row["af_r"] <= 1 and row["frechet"] >= 0
    with open(out / "study.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["cell"], r["schedule"], r["prediction"]) for r in rows] == [
        ("cosine_eps", "cosine", "eps"), ("linear_eps", "linear", "eps")]
    assert (out / "study_af_r.png").stat().st_size > 1000


def test_study_refuses_a_bad_override_before_training(prepared, tmp_path):
    study = S.Study(base="experiments/demo.py:smoke", grid={"diffusion.shedule": ("linear",)},
                    overrides={}, sweep={})
    with pytest.raises(InputError, match="diffusion.shedule"):
        S.run_study(prepared, study, tmp_path / "study")
    assert not (tmp_path / "study").exists()
