"""Uncertainty-driven exploration: a bias that pushes walkers toward ensemble disagreement.

The bias energy is a bounded function of the variance of the members' energies
(the uncertainty-driven dynamics of Kulichenko et al., J. Phys. Chem. Lett. 12,
6227 (2021); ALmoMD's ``NVTLangevin_bias`` with ``bias_A`` and ``bias_B``)::

    E_bias = A * (exp(-s2 / (N * B**2)) - 1),   s2 = mean_m (E_m - mean E)**2

with strength ``A`` (eV, >= 0), width ``B`` (eV per sqrt(atom)) and ``N`` atoms.
It is 0 where the members agree and tends to ``-A`` where they disagree much
more than ``B * sqrt(N)``, so a walker is drawn toward disagreement without
running away. Its force needs no extra pass through the models: with member
forces ``F_m = -dE_m/dx`` (all from the ensemble's one backward pass),

    F_bias = -(2 A / (M N B**2)) exp(-s2 / (N B**2)) sum_m (E_m - mean E) (F_m - mean F)

Frames are labeled with the unbiased reference; the bias energy is recorded
per frame (``md_bias_energy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator, all_changes


@dataclass(frozen=True)
class UncertaintyBias:
    """The bias's strength ``A`` (eV) and width ``B`` (eV per sqrt(atom))."""

    strength: float
    width: float

    def __post_init__(self) -> None:
        if self.strength < 0 or self.width <= 0:
            raise ValueError(
                f"bias strength must be >= 0 and width > 0 (got {self.strength}, {self.width})"
            )

    def energy_and_forces(
        self, member_energies: np.ndarray, member_forces: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """The bias energy (eV) and forces ``(N, 3)`` from members' energies and forces."""
        energies = np.asarray(member_energies, dtype=float)
        forces = np.asarray(member_forces, dtype=float)
        n_members, n_atoms = forces.shape[:2]
        deviation = energies - energies.mean()
        scale = n_atoms * self.width**2
        decay = np.exp(-np.mean(deviation**2) / scale)
        energy = self.strength * (decay - 1.0)
        spread = np.einsum("m,mij->ij", deviation, forces - forces.mean(axis=0))
        bias_forces = -2.0 * self.strength * decay / (n_members * scale) * spread
        return float(energy), bias_forces


class BiasedEnsemble(Calculator):
    """An ensemble calculator whose energy and forces include :class:`UncertaintyBias`.

    Member predictions and uncertainties are the ensemble's own (unbiased);
    ``bias_energy`` and ``bias_forces`` are added to the results.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, ensemble: Calculator, bias: UncertaintyBias, **kwargs):
        super().__init__(**kwargs)
        self.ensemble = ensemble
        self.bias = bias

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        self.ensemble.calculate(self.atoms, properties, system_changes)
        results = dict(self.ensemble.results)
        energy, forces = self.bias.energy_and_forces(
            results["member_energies"], results["member_forces"]
        )
        results.update(
            energy=results["energy"] + energy,
            free_energy=results["energy"] + energy,
            forces=results["forces"] + forces,
            bias_energy=energy,
            bias_forces=forces,
        )
        self.results = results
