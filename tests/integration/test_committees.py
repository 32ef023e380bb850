"""A committee of NequIP and Allegro members: real training, packaging and evaluation."""

import warnings

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import REPO, load_test_config

from almomd.data.frames import labeled_copy, write_frames
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.settings.schema import validate_config
from almomd.settings.sections import Settings
from almomd.training import trainer

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two Allegro members and one NequIP member trained on the same EMT frames."""
    work = tmp_path_factory.mktemp("committee")
    frames = []
    for i in range(12):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        frames.append(labeled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces(),
                                        al_id=f"emt-{i}"))  # fmt: skip
    write_frames(work / "train.extxyz", frames)
    config = validate_config(load_test_config(), REPO / ".test")
    config["training"]["max_epochs"] = 3
    models = {}
    for name, architecture, seed in (("nequip", "nequip", 1), ("allegro_a", "allegro", 2),
                                     ("allegro_b", "allegro", 3)):  # fmt: skip
        models[name] = work / f"{name}.nequip.zip"
        trainer.train_member(Settings.from_config(config), work / "train.extxyz", ["Cu"], seed,
                             7, work / name, models[name], architecture=architecture)  # fmt: skip
    return models, frames[0]


def energies_and_forces(calculator, atoms):
    work = atoms.copy()
    work.calc = calculator
    return work.get_potential_energy(), work.get_forces()


def test_a_mixed_committee_falls_back_member_by_member_and_says_why(members):
    models, atoms = members
    with pytest.warns(UserWarning, match="differ in architecture; cannot batch them"):
        mixed = EnsembleCalculator([str(models["nequip"]), str(models["allegro_a"])])
    assert not mixed.batched
    energy, forces = energies_and_forces(mixed, atoms)
    singles = [energies_and_forces(EnsembleCalculator([str(models[n])]), atoms)
               for n in ("nequip", "allegro_a")]  # fmt: skip
    assert energy == pytest.approx(np.mean([e for e, _ in singles]), abs=1e-5)
    np.testing.assert_allclose(forces, np.mean([f for _, f in singles], axis=0), atol=1e-5)
    assert mixed.results["uncertainty"]["force_max"] > 0


def test_an_allegro_committee_runs_in_the_batched_pass(members):
    models, atoms = members
    files = [str(models["allegro_a"]), str(models["allegro_b"])]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback
        batched = EnsembleCalculator(files)
    assert batched.batched
    one_by_one = EnsembleCalculator(files, batched=False)
    e_batched, f_batched = energies_and_forces(batched, atoms)
    e_single, f_single = energies_and_forces(one_by_one, atoms)
    assert e_batched == pytest.approx(e_single, abs=1e-5)
    np.testing.assert_allclose(f_batched, f_single, atol=1e-5)
