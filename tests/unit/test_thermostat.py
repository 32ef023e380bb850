"""The NVT thermostat samples the canonical distribution on the small cells campaigns use."""

from __future__ import annotations

import warnings

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.units import kB

from almomd.exploration.md import MDSettings, make_dynamics, thermalize


def block_mean_error(series: np.ndarray, n_blocks: int = 20) -> float:
    """The standard error of the mean of a correlated series, from block averages."""
    blocks = np.array_split(series, n_blocks)
    means = np.array([b.mean() for b in blocks])
    return float(means.std(ddof=1) / np.sqrt(n_blocks))


def test_kinetic_energy_of_32_atoms_is_canonical():
    """<K> = f/2 kT and var K = f/2 (kT)^2 for f = 3N - 3 degrees of freedom (the centre of
    mass held), within 4 standard errors from block averages of a long Langevin run."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)  # 32 atoms
    atoms.calc = EMT()
    temperature = 600.0
    rng = np.random.default_rng(11)
    thermalize(atoms, temperature, rng)
    settings = MDSettings("nvt_langevin", temperature, 2.0, 0.05, 0, 1, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ASE warns when fixcm=True would bias the sampling
        dyn = make_dynamics(atoms, settings, rng)
    dyn.run(300)  # equilibrate
    energies = []
    for _ in range(8000):
        dyn.run(1)
        energies.append(atoms.get_kinetic_energy())
    kinetic = np.array(energies)
    dof = 3 * len(atoms) - 3
    kt = kB * temperature
    assert np.linalg.norm(atoms.get_momenta().sum(axis=0)) < 1e-8  # no drift
    mean, mean_error = kinetic.mean(), block_mean_error(kinetic)
    assert abs(mean - dof / 2 * kt) < 4 * mean_error, (mean, dof / 2 * kt, mean_error)
    spread = (kinetic - kinetic.mean()) ** 2
    var, var_error = spread.mean(), block_mean_error(spread)
    assert abs(var - dof / 2 * kt**2) < 4 * var_error, (var, dof / 2 * kt**2, var_error)
    # the test can tell: 3N degrees of freedom (a drifting centre of mass) lie outside
    assert abs(mean - 3 * len(atoms) / 2 * kt) > 4 * mean_error
