"""The uncertainty bias: its force is minus the gradient of its energy; it vanishes on agreement."""

import numpy as np
import pytest
from ase import Atoms
from toy_ensemble import ToyEnsemble

from almomd.ensemble.bias import BiasedEnsemble, UncertaintyBias, energy_spread
from almomd.settings.schema import load_schema


def cluster():
    rng = np.random.default_rng(3)
    positions = np.array([[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0], [0, 0, 1.1], [1.1, 1.1, 1.1]])
    return Atoms("Ar5", positions=positions + rng.normal(0, 0.05, (5, 3)))


MEMBERS = [(1.0, 1.0), (1.05, 0.9), (0.97, 1.2), (1.02, 1.1)]


@pytest.mark.parametrize("width", [0.3, 2.0])  # the spread is 0.6 eV per sqrt(atom)
def test_bias_force_is_minus_the_gradient_of_the_bias_energy(width):
    bias = UncertaintyBias(strength=0.7, width=width)
    atoms = cluster()
    calc = BiasedEnsemble(ToyEnsemble(MEMBERS), bias)

    def bias_energy(positions):
        work = atoms.copy()
        work.positions = positions
        work.calc = calc
        work.get_potential_energy()
        return calc.results["bias_energy"]

    atoms.calc = calc
    atoms.get_potential_energy()
    forces = calc.results["bias_forces"].copy()
    assert np.abs(forces).max() > 1e-3  # a real test: the bias pulls here
    h = 1e-5
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.positions.copy(), atoms.positions.copy()
            plus[i, k] += h
            minus[i, k] -= h
            numeric[i, k] = -(bias_energy(plus) - bias_energy(minus)) / (2 * h)
    np.testing.assert_allclose(forces, numeric, rtol=1e-5, atol=1e-8)


def test_biased_energy_and_forces_are_the_mean_plus_the_bias():
    atoms = cluster()
    ensemble = ToyEnsemble(MEMBERS)
    atoms.calc = BiasedEnsemble(ensemble, UncertaintyBias(0.5, 0.1))
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    results = atoms.calc.results
    assert -0.5 <= results["bias_energy"] < 0
    assert energy == pytest.approx(ensemble.results["energy"] + results["bias_energy"])
    np.testing.assert_allclose(forces, ensemble.results["forces"] + results["bias_forces"])
    np.testing.assert_array_equal(results["member_energies"], ensemble.results["member_energies"])


def test_bias_vanishes_when_the_members_agree():
    atoms = cluster()
    atoms.calc = BiasedEnsemble(ToyEnsemble([(1.0, 1.0)] * 4), UncertaintyBias(2.0, 0.01))
    atoms.get_potential_energy()
    assert atoms.calc.results["bias_energy"] == 0.0
    assert not atoms.calc.results["bias_forces"].any()


def test_bias_is_bounded_by_its_strength():
    energies = np.array([0.0, 10.0, -10.0, 5.0])  # members that disagree wildly
    energy, _ = UncertaintyBias(0.3, 0.01).energy_and_forces(energies, np.zeros((4, 2, 3)))
    assert energy == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="width > 0"):
        UncertaintyBias(0.3, 0.0)


def automatic_width(scale: float) -> float:
    """The width measured on members of one sigma whose epsilons spread ``scale`` times MEMBERS'."""
    atoms = cluster()
    members = [(1.0, 1.0 + scale * (e - 1.0)) for _, e in MEMBERS]  # energy linear in epsilon
    calc = BiasedEnsemble(ToyEnsemble(members), UncertaintyBias(0.5, None, 2.0, warmup_steps=3))
    atoms.calc = calc
    spreads = []
    for step in range(4):
        atoms.positions[0, 0] += 0.01
        atoms.get_potential_energy()
        if step < 3:  # measuring: no bias yet
            assert calc.results["bias_energy"] == 0.0 and not calc.results["bias_forces"].any()
            assert np.isnan(calc.results["bias_width"]) == (step < 2)  # set at the third
            spreads.append(energy_spread(calc.results["member_energies"], len(atoms)))
    assert calc.results["bias_width"] == pytest.approx(2.0 * np.sqrt(np.mean(np.square(spreads))))
    assert calc.results["bias_energy"] < 0  # biased from then on
    return calc.results["bias_width"]


def test_automatic_width_follows_the_ensembles_energy_spread():
    """Members that disagree three times more get a bias three times wider."""
    assert automatic_width(3.0) / automatic_width(1.0) == pytest.approx(3.0, rel=1e-6)


def test_the_configs_bias_defaults_are_the_bias_objects():
    bias = load_schema()["properties"]["exploration"]["properties"]["bias"]["properties"]
    auto = UncertaintyBias.from_settings({"strength": 0.1, "width": "auto"})
    assert auto.width is None
    assert auto.width_factor == bias["width_factor"]["default"]
    assert auto.warmup_steps == bias["warmup_steps"]["default"]
    assert UncertaintyBias.from_settings({"strength": 0.1, "width": 0.3}).width == 0.3
    with pytest.raises(ValueError, match="warmup_steps >= 1"):
        UncertaintyBias(0.1, None, warmup_steps=0)
