"""The novelty signal on real members: where the training set never was, and in the workflow."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import bulk
from conftest import copy_test_config, snakemake, test_config_with

from almomd.data.frames import read_frames
from almomd.ensemble.novelty import NoveltyReference, combined

pytestmark = pytest.mark.workflow


def yaml_config(workdir):
    return yaml.safe_load((workdir / "config.yaml").read_text())


def models_and_reference(campaign, iteration=1):
    models_dir = campaign / "results" / f"iter_{iteration}" / "models"
    models = sorted(str(p) for p in models_dir.glob("member_*.nequip.zip"))
    return models, NoveltyReference.load(models_dir / "novelty.npz")


def test_every_iteration_has_a_reference_and_every_explored_frame_its_novelty(campaign):
    for iteration in (0, 1):
        models, reference = models_and_reference(campaign, iteration)
        assert reference.n_members == len(models) == 2
        walkers = sorted((campaign / "results" / f"iter_{iteration}" / "explore").glob("*.extxyz"))
        frames = [a for w in walkers for a in read_frames(w)]
        assert frames
        for atoms in frames:
            novelty, spread = atoms.arrays["novelty"], atoms.arrays["force_spread"]
            assert np.isfinite(novelty).all() and (novelty >= 0).all()
            # the arrays are written with 8 decimals
            assert atoms.info["u_novelty"] == pytest.approx(novelty.max(), rel=1e-5, abs=1e-7)
            assert atoms.info["u_force_max"] == pytest.approx(spread.max(), rel=1e-5, abs=1e-7)
            assert atoms.info["u_force_max_novelty"] == pytest.approx(
                combined(spread, novelty), rel=1e-5, abs=1e-7
            )
            # its place in feature space: 2 members x 1 element (Cu) x 8 features
            assert atoms.info["ens_descriptor"].shape == (16,)
    table = pd.read_csv(campaign / "results" / "iter_1" / "eval" / "heldout_predictions.csv")
    assert np.isfinite(table["u_novelty"]).all()


def test_a_vacancy_neighbour_is_newer_than_the_atoms_of_a_bulk_frame(campaign):
    """A bulk-only ensemble: a vacancy's neighbours lie further from the training set.

    Measured on this campaign (tiny members, 8 features, 6 epochs): the median
    novelty of a vacancy's 12 neighbours 1.9x that of the test frames' atoms,
    where their median force spread was 1.07x.
    """
    from almomd.ensemble.calculator import EnsembleCalculator

    models, reference = models_and_reference(campaign)
    calc = EnsembleCalculator(models, novelty=reference)

    def evaluate(atoms):
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        forces = calc.results["member_forces"]
        spread = np.sqrt(((forces - forces.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0))
        return calc.results["novelty"], spread

    train = read_frames(campaign / "results" / "iter_1" / "train.extxyz")
    assert evaluate(train[0])[0].max() < 1e-3  # its own atoms are in the reference
    tests = read_frames(campaign / "results" / "data" / "test.extxyz")
    fresh = [evaluate(atoms) for atoms in tests]
    around = []
    for atoms in tests[:3]:
        distances = atoms.get_distances(0, range(len(atoms)), mic=True)
        neighbours = [i - 1 for i in np.argsort(distances)[1:13]]  # after removing atom 0
        vacancy = atoms.copy()
        del vacancy[0]
        novelty, spread = evaluate(vacancy)
        around.append((novelty[neighbours], spread[neighbours]))
    novelty_ratio = np.median(np.concatenate([a[0] for a in around])) / np.median(
        np.concatenate([f[0] for f in fresh])
    )
    spread_ratio = np.median(np.concatenate([a[1] for a in around])) / np.median(
        np.concatenate([f[1] for f in fresh])
    )
    assert np.median(np.concatenate([f[0] for f in fresh])) < 1.0  # the training set's scale
    assert novelty_ratio > 1.5, (novelty_ratio, spread_ratio)
    assert novelty_ratio > 1.3 * spread_ratio, (novelty_ratio, spread_ratio)


def test_the_batched_pass_and_member_by_member_agree_on_novelty(campaign):
    from almomd.ensemble.calculator import EnsembleCalculator

    models, reference = models_and_reference(campaign)
    atoms = read_frames(campaign / "results" / "data" / "test.extxyz")[1]
    found = {}
    for batched in (True, False):
        calc = EnsembleCalculator(models, batched=batched, novelty=reference)
        assert calc.batched == batched
        work = atoms.copy()
        work.calc = calc
        work.get_potential_energy()
        found[batched] = (calc.features(atoms), calc.results["novelty"])
    np.testing.assert_allclose(found[True][0], found[False][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(found[True][1], found[False][1], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def error_model_campaign(tmp_path_factory):
    """The .test campaign selecting by the default metric, force_error_max (1 iteration), with
    a batch spread in feature space filled up to the label budget."""

    def change(config):
        config["max_iterations"] = 1
        config.pop("uncertainty")  # the default
        config["selection"] |= {"diversity": "features", "fill": True, "shift": 50.0}

    workdir = copy_test_config(tmp_path_factory.mktemp("error_model") / "campaign")
    (workdir / "config.yaml").write_text(yaml.safe_dump(test_config_with(change)))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_a_campaign_selecting_by_the_error_model(error_model_campaign):
    """force_error_max: the error model is fitted on the held-out frames with the novelty
    reference, every explored frame carries it, and the selection ranks by it."""
    workdir = error_model_campaign
    iteration = workdir / "results" / "iter_0"
    model = NoveltyReference.load(iteration / "models" / "novelty.npz").error_model
    heldout = read_frames(workdir / "results" / "data" / "heldout.extxyz")
    assert model.n_atoms == sum(len(a) for a in heldout) > 0
    assert model.spread > 0 or model.novelty > 0
    table = pd.read_csv(iteration / "eval" / "heldout_predictions.csv")
    # scaled to these frames' squared errors: it predicts their force RMSE
    assert model.rmse_fitted == pytest.approx(model.rmse, rel=1e-9)
    assert np.sqrt((table["force_rmse"] ** 2).mean()) == pytest.approx(model.rmse, rel=1e-3)
    for walker in sorted((iteration / "explore").glob("*.extxyz")):
        for atoms in read_frames(walker):
            expected = model.frame(atoms.arrays["force_spread"], atoms.arrays["novelty"])
            assert atoms.info["u_force_error"] == pytest.approx(
                expected["force_error"], rel=1e-5, abs=1e-7
            )
            assert atoms.info["u_force_error_max"] == pytest.approx(
                expected["force_error_max"], rel=1e-5, abs=1e-7
            )
            assert atoms.info["u_force_error_max"] >= atoms.info["u_force_error"]
    candidates = pd.read_csv(iteration / "selection" / "candidates.csv")
    assert (candidates["metric"] == "force_error_max").all()
    selected = read_frames(iteration / "selection" / "selected.extxyz")
    assert len(selected) == 4  # the budget is met (hardly a frame passes shift 50: filled)
    assert "filled" in set(candidates["decision"])
    assert "u_force_error_max" in table
    # how it was tuned, in the status and the report
    from almomd.reporting.status import format_table

    status = json.loads((workdir / "results" / "status.json").read_text())
    figures = status[0]["error_model"]
    assert figures["n_atoms"] == model.n_atoms and figures["spread"] == model.spread
    assert set(figures["per_system"]) == {a.info["al_system"] for a in heldout}
    assert "uncertainty error model of iteration 0" in format_table(status)
    assert (workdir / "results" / "report" / "error_model.png").stat().st_size > 10_000
    assert "error model" in (workdir / "results" / "report" / "report.md").read_text()


def test_a_defect_made_in_md_crosses_the_heldout_threshold_and_is_selected(
    error_model_campaign, tmp_path
):
    """A rare event: an ensemble trained on the perfect crystal (EMT Cu, 600-900 K) runs MD
    of the bulk; then an atom jumps to the octahedral site of its cell (a Frenkel pair).
    Every frame after the jump is above the threshold the held-out frames set (production
    MD's, mean + 3 std), no bulk frame is, and the selection takes the event's frames."""
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.exploration.md import MDSettings, run_walker
    from almomd.exploration.production import uncertainty_threshold
    from almomd.selection.select import select
    from almomd.settings.schema import validate_config
    from almomd.settings.sections import Settings

    workdir = error_model_campaign
    models_dir = workdir / "results" / "iter_0" / "models"
    models = sorted(str(p) for p in models_dir.glob("member_*.nequip.zip"))
    calc = EnsembleCalculator(models, novelty=models_dir / "novelty.npz")
    start = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    md = MDSettings(thermostat="nvt_langevin", temperature=600.0, timestep=2.0, friction=0.02,
                    steps=80, log_interval=10, min_distance=1.0,
                    uncertainty_column="u_force_error_max")  # fmt: skip
    before, _ = run_walker(start, calc, md, 0, np.random.default_rng(3), tmp_path / "w.extxyz")
    after = []
    for frame in before:  # the same thermal frames with atom 0 on the octahedral site
        jumped = frame.copy()
        jumped.positions[0] += np.array([1.805, 1.805, 1.805])
        jumped.calc = calc
        jumped.get_potential_energy()
        jumped.info |= {f"u_{k}": v for k, v in calc.results["uncertainty"].items()} | {
            "al_step": frame.info["al_step"] + 100, "al_id": f"event-{len(after)}",
            "md_time_fs": frame.info["md_time_fs"] + 200.0,
        }  # fmt: skip
        after.append(jumped)
    threshold = uncertainty_threshold(workdir, 0, "u_force_error_max", 3.0)
    u_before = [a.info["u_force_error_max"] for a in before]
    u_after = [a.info["u_force_error_max"] for a in after]
    assert max(u_before) < threshold < min(u_after), (u_before, threshold, u_after)
    config = validate_config(yaml_config(workdir), workdir)
    # ALmoMD's acceptance above mean + 2 std of the held-out frames (not the fixture's fill)
    rule = dataclasses.replace(Settings.from_config(config).selection, shift=2.0, fill=False,
                               diversity="time")  # fmt: skip
    heldout = pd.read_csv(workdir / "results" / "iter_0" / "eval" / "heldout_predictions.csv")
    frames = before + after
    table = select(
        frames, u_before + u_after, heldout["u_force_error_max"].to_numpy(), rule,
        np.random.default_rng(0),
    )  # fmt: skip
    chosen = set(table.loc[table["selected"], "al_id"])
    assert chosen and chosen <= {a.info["al_id"] for a in after}, table[["al_id", "decision"]]
