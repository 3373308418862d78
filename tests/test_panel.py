"""The panel family (issue 26): leave-one-out panels of the person's class, the copying evidence,
a pinned train step, and the family through the command line."""

from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_trained_run

from genodiff_jax import cli
from genodiff_jax.data.panels import draw_panels
from genodiff_jax.data.views import panel_view
from genodiff_jax.diffusion.masked import PanelMaskedProcess
from genodiff_jax.errors import InputError
from genodiff_jax.families import FAMILIES
from genodiff_jax.models import MODELS, build_model
from genodiff_jax.sampling.settings import SamplingSettings

S = 64  # SNPs: random haplotypes this long are all different


def _cohort(n_train=12, n_test=6, classes=3, seed=0):
    """A prepared-dataset stand-in whose every haplotype is different (random over S SNPs)."""
    rng = np.random.default_rng(seed)
    tokens = {"train": rng.integers(0, 2, (n_train, 2, S), dtype=np.int8),
              "test": rng.integers(0, 2, (n_test, 2, S), dtype=np.int8)}
    split = lambda n: types.SimpleNamespace(labels=np.arange(n) % classes)  # noqa: E731
    return types.SimpleNamespace(
        tokens=tokens.__getitem__, train=split(n_train), test=split(n_test),
        variants=types.SimpleNamespace(pos=np.arange(S) * 1000 + 1, chrom=np.full(S, "2")),
        token_kind="haplotypes", path=Path("cohort"), num_classes=classes)


def _owners(panel_rows: np.ndarray, data) -> list[set[int]]:
    """For each panel row, the training people one of whose haplotypes it is."""
    train = data.tokens("train")
    return [{p for p in range(len(train)) if any((train[p, h] == row).all() for h in range(2))}
            for row in panel_rows]


def test_a_training_person_s_panel_never_holds_their_own_haplotypes_and_is_of_their_class():
    data = _cohort()
    process = PanelMaskedProcess(window=64, overlap=8, panel_size=6)
    model = build_model("snp_panel", num_classes=3, **MODELS["snp_panel"].TEST_SIZES)
    view = panel_view(data, process, model)
    panels = view.train_x["panel"]
    assert panels.shape == (12, 6, 64) and view.row["panel"].shape == (6, 64)
    labels = data.train.labels
    for person in range(12):
        owners = _owners(panels[person], data)
        assert all(len(o) == 1 for o in owners)  # each row is some training haplotype
        owners = {next(iter(o)) for o in owners}
        assert person not in owners  # leave-one-out
        assert {int(labels[p]) for p in owners} == {int(labels[person])}
    # held-out people read training haplotypes of their own class
    for person, label in enumerate(data.test.labels):
        owners = {next(iter(o)) for o in _owners(view.test_x["panel"][person], data)}
        assert {int(labels[p]) for p in owners} == {int(label)}


def test_panels_are_drawn_without_replacement_while_the_class_allows_and_any_means_everyone():
    rng = np.random.default_rng(0)
    pool = np.array([0, 0, 0, 1, 1])  # people's classes; 2 rows each
    index = draw_panels(np.array([0, 1]), pool, 2, 4, rng)
    assert len(set(index[0])) == 4 and set(index[0]) <= {0, 1, 2, 3, 4, 5}
    assert set(index[1]) <= {6, 7, 8, 9} and len(set(index[1])) == 4
    # person 3 (class 1) leaves only person 4's two rows: drawn with replacement
    alone = draw_panels(np.array([1]), pool, 2, 4, rng, pool_person=np.array([3]))
    assert set(alone[0]) <= {8, 9}
    anyone = draw_panels(np.zeros(50, int), pool, 2, 3, rng, panel_from="any")
    assert {int(i) // 2 for i in anyone.ravel()} == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match="panel_from"):
        draw_panels(np.array([0]), pool, 2, 2, rng, panel_from="pop")


def test_a_generated_person_s_panel_comes_from_the_training_people_of_the_class_asked_for():
    data = _cohort()
    process = PanelMaskedProcess(window=64, overlap=8, panel_size=5)
    asked = np.array([2, 2, 0, 1])
    trained = types.SimpleNamespace(process=process)
    panels = FAMILIES["panel"].inputs(trained, data, asked, SamplingSettings(seed=3))["panel"]
    assert panels.shape == (4, 5, S)
    for person, label in enumerate(asked):
        owners = {next(iter(o)) for o in _owners(panels[person], data)}
        assert {int(data.train.labels[p]) for p in owners} == {int(label)}
    again = FAMILIES["panel"].inputs(trained, data, asked, SamplingSettings(seed=3))["panel"]
    np.testing.assert_array_equal(panels, again)
    wider = FAMILIES["panel"].inputs(trained, data, asked, SamplingSettings(seed=3, panel_size=7))
    assert wider["panel"].shape == (4, 7, S)  # --panel-size: more rows than the run trained with


def _twins(data, noise=3, seed=1):
    """`data` whose training person 2k + 1 is person 2k with `noise` alleles of each haplotype
    flipped: everyone's nearest other person is their twin."""
    rng = np.random.default_rng(seed)
    train = np.asarray(data.tokens("train")).copy()
    for p in range(0, len(train) - 1, 2):
        twin = train[p].copy()
        for h in range(2):
            twin[h, rng.choice(S, noise, replace=False)] ^= 1
        train[p + 1] = twin
    tokens = {"train": train, "test": data.tokens("test")}
    return types.SimpleNamespace(**{**vars(data), "tokens": tokens.__getitem__})


def test_neighbour_panels_hold_the_nearest_rows_never_the_person_s_own():
    """panel_from = "neighbours": in training a person reads the rows nearest their own (their
    twin's), never their own; each haplotype of a generated person reads the rows nearest an
    anchor's, a different person of their class for each, the anchor's own left out (so the two
    anchors' twins, never one twin's pair whole, never an anchor)."""
    data = _twins(_cohort(n_train=12, classes=6))  # class c: people c and c + 6; twins 2k, 2k + 1
    process = PanelMaskedProcess(window=64, overlap=8, panel_size=2, panel_from="neighbours")
    model = build_model("snp_panel", num_classes=6, **MODELS["snp_panel"].TEST_SIZES)
    view = panel_view(data, process, model)
    for person in range(12):
        owners = {next(iter(o)) for o in _owners(view.train_x["panel"][person], data)}
        assert owners == {person ^ 1}  # the twin: 2k <-> 2k + 1
    trained = types.SimpleNamespace(process=process)
    for label in range(6):
        asked = np.full(10, label, np.int32)
        panels = FAMILIES["panel"].inputs(trained, data, asked, SamplingSettings(seed=5))["panel"]
        anchors = (label, label + 6)  # the class's two people, one a haplotype
        for panel in panels:
            assert {next(iter(o)) for o in _owners(panel, data)} == {a ^ 1 for a in anchors}


def test_the_run_s_panel_match_ranks_training_sampling_and_imputation_panels():
    """diffusion.panel_match reaches every ranking: training and validation panels, a generated
    person's neighbours, an imputed person's rows."""
    from genodiff_jax.data.panels import MATCHES

    seen = []

    def spy(rows, values):
        seen.append(rows.shape)
        return np.ones((len(values), rows.shape[1]), np.float32)

    MATCHES.register("spy", spy)
    try:
        data = _cohort(n_train=12, classes=3)
        process = PanelMaskedProcess(window=64, overlap=8, panel_size=2,
                                     panel_from="neighbours", panel_match="spy")
        model = build_model("snp_panel", num_classes=3, **MODELS["snp_panel"].TEST_SIZES)
        panel_view(data, process, model)
        assert seen == [(24, S)] * 2  # the training split's 24 rows rank both splits' panels
        trained, family = types.SimpleNamespace(process=process), FAMILIES["panel"]
        generated = family.inputs(trained, data, np.zeros(3, np.int32), SamplingSettings(seed=1))
        known = np.full((3, 2, S), -1, np.int8)
        known[:, :, ::4] = data.tokens("test")[:3, :, ::4]
        imputed = family.inputs(trained, data, np.zeros(3, np.int32), SamplingSettings(seed=1),
                                known=known)
        assert len(seen) == 4
        # A generated person reads the run's R rows, an imputed one twice as many by default.
        assert generated["panel"].shape == (3, 2, S) and imputed["panel"].shape == (3, 4, S)
        asked = family.inputs(trained, data, np.zeros(3, np.int32),
                              SamplingSettings(seed=1, panel_size=3), known=known)
        assert asked["panel"].shape == (3, 3, S)
    finally:
        del MATCHES["spy"]


def test_best_matching_leaves_out_the_rows_it_is_told_to():
    from genodiff_jax.data.panels import best_matching

    rows = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1], [1, 1, 0, 0]], np.int8)
    known = rows[[0]][None]  # [1, 1, 4]: row 0's tokens
    assert best_matching(rows, known, 2).tolist() == [[0, 1]]
    assert best_matching(rows, known, 2, leave_out=np.array([[0]])).tolist() == [[1, 3]]


def test_rare_sharing_ranks_a_shared_rare_allele_above_many_common_matches():
    """panel_match: "agreement" counts every match 1, so a hub carrying the common allele
    everywhere is nearest; "rare_sharing" counts a match 1 / frequency, so the row sharing the
    person's rare allele wins. Pinned: both rankings and the weights."""
    from genodiff_jax.data.panels import MATCHES, best_matching

    # 5 identical hubs with the common ALT at SNPs 1-3 (frequency 5 / 6); row 5 REF there and
    # the only carrier of SNP 0's ALT, as is the person, who carries the common ALTs too.
    rows = np.array([[0, 1, 1, 1]] * 5 + [[1, 0, 0, 0]], np.int8)
    person = np.ones((1, 1, 4), np.int8)
    np.testing.assert_allclose(MATCHES["rare_sharing"](rows, np.array([0, 1]))[:, :2],
                               [[1.2, 6.0], [6.0, 1.2]])
    assert best_matching(rows, person, 1).tolist() == [[0]]  # 3 matches against 1
    assert best_matching(rows, person, 1, match="rare_sharing").tolist() == [[5]]  # 6 > 3.6
    with pytest.raises(ValueError, match="unknown panel match 'nearest'; known: agreement"):
        best_matching(rows, person, 1, match="nearest")


def test_the_copying_evidence_counts_runs_and_windows_from_known_tokens_only():
    from genodiff_jax.models.snp_panel import panel_evidence

    M = 2  # MASK for haplotype tokens
    tokens = jnp.array([[[1, 1, M, 1, 0, 1]]])  # [B=1, H=1, L=6]
    panel = jnp.array([[[1, 1, 0, 1, 1, 1]]])  # [B=1, R=1, L=6]
    ev = np.expm1(np.stack(panel_evidence(tokens, panel, M, scales=(2,)), axis=-1))[0, 0, 0]
    # per SNP (patch 1): left run, left matches / mismatches within 2 SNPs, the right side's,
    # then here: known and the same, known and different
    np.testing.assert_allclose(ev[2], [2, 2, 0, 1, 1, 1, 0, 0], atol=1e-5)  # the masked SNP
    np.testing.assert_allclose(ev[5], [0, 1, 1, 0, 0, 0, 1, 0], atol=1e-5)  # after a mismatch
    np.testing.assert_allclose(ev[0], [0, 0, 0, 2, 1, 0, 1, 0], atol=1e-5)  # SNP 2 skipped
    np.testing.assert_allclose(ev[4, -2:], [0, 1], atol=1e-5)
    # patches of 2 SNPs: matches 2, 1, 1 and mismatches 0, 0, 1; a run ends at the nearest
    # patch with a mismatch, that patch's matches counted
    ev = np.expm1(np.stack(panel_evidence(tokens, panel, M, scales=(1,), patch=2), axis=-1))
    np.testing.assert_allclose(ev[0, 0, 0], [[0, 0, 0, 2, 1, 0, 2, 0],
                                             [2, 2, 0, 1, 1, 1, 1, 0],
                                             [3, 1, 0, 0, 0, 0, 1, 1]], atol=1e-5)


@pytest.mark.parametrize("row_owner", [False, True])
def test_with_row_owner_a_haplotype_can_copy_its_own_neighbourhood_only(row_owner):
    """Panel rows alternate between a person's two token rows (`data.panels`): with `row_owner`
    the score can weigh a row by whose it is, so before anything is known token row 0 copies
    only the even rows (all 0 here) and row 1 the odd ones (all 1); without it, both copy all."""
    model = build_model("snp_panel", num_classes=3, row_owner=row_owner,
                        **MODELS["snp_panel"].TEST_SIZES)
    L, R, M = 32, 4, 2
    x = {"tokens": jnp.full((1, 2, L), M, jnp.int32),
         "pos": jnp.arange(L, dtype=jnp.float32)[None] * 100,
         "af": jnp.full((1, L), 0.3, jnp.float32),
         "panel": jnp.asarray(np.arange(R)[None, :, None] % 2 * np.ones((1, R, L)), jnp.int8)}
    t, y = jnp.full((1,), 0.5), jnp.zeros((1,), jnp.int32)
    params = jax.tree.map(np.array, jax.jit(model.init)(jax.random.key(0), x, t, y)["params"])
    params["mutation"]["kernel"][:] = 0.0
    params["mutation"]["bias"][:] = -40.0  # eps ~ 0
    weights = params["copy_weights"]
    weights["kernel"][:] = 0.0
    bias = weights["bias"].reshape(2, -1)  # per token row: the evidence's weights, the own score
    bias[:] = 0.0
    bias[:, -1] = -40.0  # never the network's own distribution
    if row_owner:
        bias[:, -2] = 40.0  # the owner feature, the evidence's last
    weights["bias"] = bias.reshape(-1)
    logits = jax.jit(model.apply)({"params": params}, x, t, y)  # jitted: one program, not ~200
    p_one = np.exp(np.asarray(logits))[0, :, :, 1]  # [H, L]
    want = [0.0, 1.0] if row_owner else [0.5, 0.5]
    np.testing.assert_allclose(p_one, np.repeat(np.array(want)[:, None], L, axis=1), atol=1e-4)


@pytest.mark.parametrize("row_owner", [False, True])
def test_a_pinned_panel_train_step(row_owner):
    """The first two losses of a fixed tiny panel setup, without and with `row_owner` (copied
    from a run on jax 0.10.2, CPU)."""
    from genodiff_jax.data.loader import put_data
    from genodiff_jax.sharding import make_mesh
    from genodiff_jax.train import OptimizerConfig, StepRecipe, build_program

    model = build_model("snp_panel", num_classes=3, row_owner=row_owner,
                        **MODELS["snp_panel"].TEST_SIZES)
    row = {"tokens": jax.ShapeDtypeStruct((2, 32), np.int8),
           "pos": jax.ShapeDtypeStruct((32,), np.float32),
           "af": jax.ShapeDtypeStruct((32,), np.float32),
           "panel": jax.ShapeDtypeStruct((4, 32), np.int8)}
    program = build_program(model, PanelMaskedProcess(window=32, overlap=8, panel_size=4),
                            OptimizerConfig(learning_rate=1e-3, warmup_steps=0, total_steps=10),
                            StepRecipe(batch_size=4), row=row, mask=None, num_classes=3,
                            mesh=make_mesh(1))
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 2, (8, 2, 32), dtype=np.int8)
    panel = np.concatenate([tokens[::-1], tokens], axis=1)  # [8, 4, 32]: others', then own
    x = {"tokens": tokens, "pos": np.tile(np.arange(32, dtype=np.float32) * 100, (8, 1)),
         "af": np.tile(np.linspace(0.05, 0.5, 32, dtype=np.float32), (8, 1)), "panel": panel}
    data = put_data(x, np.arange(8) % 3, program.mesh)
    state = program.init_state(jax.random.key(0))
    state, m1 = program.step(state, data, jax.random.key(1))
    state, m2 = program.step(state, data, jax.random.key(1))
    got = [float(m1["loss"]), float(m2["loss"]), float(m1["grad_norm"])]
    np.testing.assert_allclose(got, PINNED[row_owner], rtol=1e-5)


PINNED = {False: [0.4593799114227295, 0.3965839147567749, 3.4953227043151855],  # loss 1, 2, grad
          True: [0.5644333362579346, 0.5611687302589417, 1.4177440404891968]}


@pytest.fixture(scope="module")
def panel_run(tmp_path_factory):
    """The tiny simulated cohort, prepared, and the panel family's CI-sized run on it."""
    yield from tiny_trained_run(tmp_path_factory, "panel", "experiments/panel.py:smoke")


def test_the_panel_family_trains_and_samples_through_the_command_line(panel_run, capsys):
    from genodiff_jax.data import io

    run = json.loads((panel_run / "train" / "run.json").read_text())
    assert run["row"]["panel"]["shape"] == [4, 256] and run["row"]["panel"]["dtype"] == "int8"
    capsys.readouterr()
    out = panel_run / "synthetic"
    assert cli.main(["sample", "--workdir", str(panel_run / "train"), "--n", "7", "--labels",
                     "train", "--out", str(out), "--steps", "4", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    g = io.read_vcf(out / "synthetic.vcf.gz", haplotypes=True, drop_monomorphic=False,
                    progress=False)
    assert summary["phased"] and g.phased and g.shape[0] == 7


def _copying_params(params: dict, scales: int) -> dict:
    """`params` with the copying head set to copy the panel row with the longest agreeing runs
    on both sides, without mutation, never the network's own distribution."""
    params = jax.tree.map(np.array, params)
    H = 2
    mutation = params["mutation"]
    mutation["kernel"][:] = 0.0
    mutation["bias"][:] = -40.0  # eps ~ 0
    weights = params["copy_weights"]
    weights["kernel"][:] = 0.0
    bias = weights["bias"].reshape(H, -1)  # per row: the evidence's weights, then the own score
    bias[:] = 0.0
    side = 1 + 2 * scales  # a side's columns: run, then (matches, mismatches) per scale
    bias[:, 0] = bias[:, side] = 20.0  # long agreeing runs left and right
    bias[:, 2 * side + 1] = -40.0  # known tokens that differ in the patch
    bias[:, -1] = -40.0  # never the network's own distribution
    weights["bias"] = bias.reshape(-1)
    return params


def test_imputation_copies_an_identical_reference_haplotype(panel_run):
    """A training person imputed at hidden sites, with the training split as the reference: the
    panel holds their own haplotypes (they agree with everything observed), and a head that copies
    the longest agreeing row recovers every hidden allele."""
    from genodiff_jax.data.loader import load_prepared
    from genodiff_jax.sampling.impute import imputation_settings, impute_tokens
    from genodiff_jax.sampling.tokens import UNKNOWN
    from genodiff_jax.train.trained import load_trained

    trained = load_trained(panel_run / "train")
    trained = dataclasses.replace(trained, params=_copying_params(
        trained.params, len(trained.model.scales)))
    data = load_prepared(panel_run / "data")
    truth = np.asarray(data.tokens("train"))[:3]
    hidden = np.zeros(truth.shape[-1], bool)
    hidden[1::5] = True
    known = np.where(hidden, UNKNOWN, truth).astype(np.int8)
    labels = np.asarray(data.train.labels[:3], np.int32)
    # The run's R rows, not imputation's default 2R: the hand-set head copies by run lengths
    # alone, and among twice the rows one agreeing as long on both sides of a hidden SNP can
    # differ there (1 of 1632 hidden alleles here).
    size = SamplingSettings(panel_size=trained.process.panel_size)
    per_snp = FAMILIES["panel"].inputs(trained, data, labels, size, known)
    own = np.stack([truth[:, 0], truth[:, 1]], axis=1)
    assert all(any((per_snp["panel"][i] == own[i, h]).all(axis=-1)) for i in range(3)
               for h in range(2))  # both of each person's haplotypes are in their panel
    filled, dosage = impute_tokens(trained, data, known, labels,
                                   imputation_settings(trained, SamplingSettings(steps=4)),
                                   per_snp=per_snp)
    np.testing.assert_array_equal(filled[0][:, :, hidden], truth[:, :, hidden])
    np.testing.assert_allclose(dosage[:, :, hidden], truth[:, :, hidden], atol=0.01)


def test_impute_reads_another_reference_vcf(panel_run, tmp_path, capsys):
    """`genodiff impute --reference VCF`: the panel comes from that VCF's haplotypes (here the
    cohort itself); the summary says how many it read."""
    from genodiff_jax.data.loader import load_prepared

    data = load_prepared(panel_run / "data")
    sites = [f"{c}:{p}" for c, p in zip(data.variants.chrom[3::50], data.variants.pos[3::50])]
    (tmp_path / "hide.txt").write_text("\n".join(sites) + "\n")
    cohort = panel_run / "cohort" / "cohort.vcf.gz"
    capsys.readouterr()
    assert cli.main(["impute", "--workdir", str(panel_run / "train"), "--vcf", str(cohort),
                     "--out", str(tmp_path / "imputed"), "--mask-sites", str(tmp_path / "hide.txt"),
                     "--reference", str(cohort), "--steps", "2", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    people = len(data.train) + len(data.test)
    assert summary["reference"]["haplotypes"] == 2 * people
    assert summary["sites"]["masked"] == len(sites)
    run_rows = json.loads((panel_run / "train" / "config.json").read_text())["diffusion"]
    assert summary["panel_rows"] == 2 * run_rows["panel_size"]  # imputation's default, 2R
    assert (tmp_path / "imputed" / "imputed.vcf.gz").is_file()


def test_sampling_copies_from_a_reference_vcf(panel_run, tmp_path, capsys):
    """`genodiff sample --reference VCF`: every panel row comes from that VCF. With one person in
    it (twice: a neighbours panel leaves the anchor out) and a head that only copies, each
    generated allele is one of that person's two at the site, so their homozygous sites come out
    unchanged in everyone generated; through the command line the summary names the VCF. A VCF
    of one person leaves an anchor no one to read: a clear error."""
    from genodiff_jax.data import writers
    from genodiff_jax.data.loader import load_prepared
    from genodiff_jax.sampling.impute import imputation_settings
    from genodiff_jax.train.trained import load_trained

    data = load_prepared(panel_run / "data")
    person = np.asarray(data.tokens("test"))[0]  # [2, S], not in the training split
    vcf = tmp_path / "one.vcf.gz"
    writers.write_vcf(vcf, data.variants, ["P0", "P1"], np.stack([person.T] * 2), phased=True)
    trained = load_trained(panel_run / "train")
    trained = dataclasses.replace(trained, params=_copying_params(
        trained.params, len(trained.model.scales)))
    settings = imputation_settings(trained, SamplingSettings(steps=4, reference=vcf))
    labels = np.array([0, 1, 2, 0, 1], np.int32)
    generated = np.asarray(FAMILIES["panel"].generate(trained, data, labels, settings))
    homozygous = person[0] == person[1]
    assert homozygous.sum() > 10 and (person[0] != person[1]).any()
    np.testing.assert_array_equal(generated[:, :, homozygous],
                                  np.broadcast_to(person[0, homozygous], (5, 2, homozygous.sum())))
    training_generated = np.asarray(FAMILIES["panel"].generate(
        trained, data, labels, dataclasses.replace(settings, reference=None)))
    assert (training_generated[:, :, homozygous] != person[0, homozygous]).any()

    capsys.readouterr()
    assert cli.main(["sample", "--workdir", str(panel_run / "train"), "--n", "3", "--out",
                     str(tmp_path / "synthetic"), "--panel-vcf", str(vcf), "--steps", "2",
                     "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["reference"] == str(vcf) and summary["n"] == 3
    alone = tmp_path / "alone.vcf.gz"
    writers.write_vcf(alone, data.variants, ["P0"], person.T[None], phased=True)
    with pytest.raises(InputError, match="2 or more people"):
        FAMILIES["panel"].generate(trained, data, labels, dataclasses.replace(settings,
                                                                              reference=alone))
