"""Uncertainty metrics against values computed by hand."""

import math

import numpy as np
import pytest

from almomd.ensemble.uncertainty import uncertainties
from almomd.settings.sections import Uncertainty


def test_two_members_two_atoms_by_hand():
    # member forces differ only on atom 0, by +-1 along x: sigma_0 = 1, sigma_1 = 0
    forces = np.array(
        [
            [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
            [[-1.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
        ]
    )
    energies = np.array([-10.0, -12.0])  # std = 1 eV, 2 atoms -> 0.5 eV/atom
    u = uncertainties(energies, forces)
    assert u["energy"] == pytest.approx(0.5)
    assert u["force_mean"] == pytest.approx(0.5)
    assert u["force_max"] == pytest.approx(1.0)
    # mean forces: atom 0 zero, atom 1 (0, 2, 0): mean norm 1; |mean E| / N = 5.5
    assert u["force_mean_rel"] == pytest.approx(0.5)
    assert u["force_max_rel"] == pytest.approx(1.0)
    assert u["energy_rel"] == pytest.approx(0.5 / 5.5)


def test_three_members_all_components():
    rng = np.random.default_rng(0)
    forces = rng.normal(size=(3, 4, 3))
    energies = np.array([1.0, 2.0, 4.0])
    u = uncertainties(energies, forces)
    mean = forces.mean(axis=0)
    sigma = [
        math.sqrt(sum(np.sum((forces[m, i] - mean[i]) ** 2) for m in range(3)) / 3)
        for i in range(4)
    ]
    assert u["force_mean"] == pytest.approx(sum(sigma) / 4)
    assert u["force_max"] == pytest.approx(max(sigma))
    e_mean = 7 / 3
    e_std = math.sqrt(sum((e - e_mean) ** 2 for e in energies) / 3)
    assert u["energy"] == pytest.approx(e_std / 4)


def test_identical_members_have_zero_uncertainty():
    forces = np.tile(np.arange(6.0).reshape(1, 2, 3), (4, 1, 1))
    u = uncertainties(np.full(4, -3.0), forces)
    assert all(value == 0.0 for value in u.values())


def test_uncertainty_column_names_metric_and_kind():
    assert Uncertainty().column == "u_force_error_max"
    assert Uncertainty(metric="force_max").column == "u_force_max"
    assert Uncertainty(metric="energy", kind="relative").column == "u_energy_rel"
