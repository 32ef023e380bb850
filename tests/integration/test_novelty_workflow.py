"""The novelty signal on real members: where the training set never was, and in the workflow."""

import numpy as np
import pandas as pd
import pytest
from conftest import copy_test_config, snakemake, test_config_with

from almomd.data.frames import read_frames
from almomd.ensemble.novelty import NoveltyReference, combined

pytestmark = pytest.mark.workflow


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


def test_a_campaign_selecting_by_novelty(tmp_path):
    """... with a batch spread in feature space, filled up to the label budget."""

    def change(config):
        config["max_iterations"] = 1
        config["uncertainty"] = {"metric": "force_max_novelty"}
        config["selection"] |= {"diversity": "features", "fill": True, "shift": 50.0}

    workdir = copy_test_config(tmp_path / "novelty")
    import yaml

    (workdir / "config.yaml").write_text(yaml.safe_dump(test_config_with(change)))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    candidates = pd.read_csv(workdir / "results" / "iter_0" / "selection" / "candidates.csv")
    assert (candidates["metric"] == "force_max_novelty").all()
    selected = read_frames(workdir / "results" / "iter_0" / "selection" / "selected.extxyz")
    assert len(selected) == 4  # the budget is met (hardly a frame passes shift 50: filled)
    assert "filled" in set(candidates["decision"])
    for atoms in selected:  # ranked by the spread scaled by novelty
        assert atoms.info["u_force_max_novelty"] >= atoms.info["u_force_max"]
    heldout = pd.read_csv(workdir / "results" / "iter_0" / "eval" / "heldout_predictions.csv")
    assert "u_force_max_novelty" in heldout
