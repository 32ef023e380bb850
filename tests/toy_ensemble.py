"""A fast stand-in ensemble for unit tests: Lennard-Jones members that disagree.

It returns what almomd's EnsembleCalculator returns (means, member energies and
forces, uncertainties), so MD and bias plumbing is tested without NequIP.
"""

import numpy as np
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lj import LennardJones

from almomd.ensemble.uncertainty import uncertainties
from almomd.exploration.md import MDSettings

#: (sigma, epsilon) of each member, around argon's (3.4 A, 0.0104 eV)
ARGON = [(3.40, 0.0104), (3.45, 0.0098), (3.37, 0.0112), (3.42, 0.0108)]


def argon():
    """An fcc argon crystal of 32 atoms, for the stand-in members."""
    return bulk("Ar", "fcc", a=5.26, cubic=True).repeat((2, 2, 2))


def md_settings(**changes) -> MDSettings:
    """A short, cold walker for argon (40 steps of 5 fs, a frame every 5), with ``changes``."""
    base = dict(thermostat="nvt_langevin", temperature=80.0, timestep=5.0, friction=0.02,
                steps=40, log_interval=5, min_distance=2.5)  # fmt: skip
    return MDSettings(**(base | changes))


class ToyEnsemble(Calculator):
    """Members that disagree: Lennard-Jones with different sigma and epsilon."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, members, cutoff=8.0):
        super().__init__()
        self.member_parameters = members
        self.cutoff = cutoff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        energies, forces = [], []
        for sigma, epsilon in self.member_parameters:
            work = self.atoms.copy()
            work.calc = LennardJones(sigma=sigma, epsilon=epsilon, rc=self.cutoff)
            energies.append(work.get_potential_energy())
            forces.append(work.get_forces())
        energies, forces = np.array(energies), np.array(forces)
        self.results = {
            "energy": energies.mean(),
            "free_energy": energies.mean(),
            "forces": forces.mean(axis=0),
            "member_energies": energies,
            "member_forces": forces,
            "uncertainty": uncertainties(energies, forces),
        }

    def results_for(self, structures):
        """Each structure's results (the ensemble's call for walkers in one pass)."""
        found = []
        for atoms in structures:
            self.calculate(atoms.copy(), ["energy"], all_changes)
            found.append(dict(self.results))
        return found
