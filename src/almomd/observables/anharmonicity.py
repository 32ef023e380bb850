"""Anharmonicity: the score sigma^A of Knoop et al. (Phys. Rev. Materials 4, 083809, 2020).

``sigma^A = sqrt( sum (F - F_harm)^2 / sum F^2 )`` over atoms and directions
(and states, for a trajectory's score), where ``F_harm = -Phi u`` are the
forces of the harmonic model at the displacements ``u`` from the ideal
structure. 0 for a harmonic crystal; about 0.2 for silicon at room temperature,
above 0.5 where the harmonic picture fails. The force constants ``Phi`` come
from phonopy's finite displacements of the ideal structure (the campaign's
supercell itself), labeled once by the labeler: the same harmonic reference
for the reference dynamics and every iteration's MLIP MD. Where atoms hop
(a superionic phase) the displacement from the ideal site loses its meaning and
the score grows with it, as in FHI-vibes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from almomd.data.trajectories import Trajectory

#: phonopy's displacement (A)
DISPLACEMENT = 0.01


@dataclass(frozen=True)
class Harmonic:
    """The harmonic model of an ideal structure: its positions, cell and force constants."""

    positions: np.ndarray  # (N, 3)
    cell: np.ndarray  # (3, 3)
    force_constants: np.ndarray  # (N, N, 3, 3), eV/A^2
    residual: np.ndarray  # (N, 3) the ideal structure's own forces (subtracted)

    def save(self, path: Path | str) -> None:
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle,
                positions=self.positions,
                cell=self.cell,
                force_constants=self.force_constants,
                residual=self.residual,
            )

    @classmethod
    def load(cls, path: Path | str) -> Harmonic:
        with np.load(path) as data:
            return cls(data["positions"], data["cell"], data["force_constants"], data["residual"])

    def displacements(self, positions: np.ndarray) -> np.ndarray:
        """Displacements (T, N, 3) of ``positions`` (T, N, 3) from the ideal sites, the
        nearest periodic image of each."""
        difference = positions - self.positions
        fractional = difference @ np.linalg.inv(self.cell)
        return (fractional - np.round(fractional)) @ self.cell

    def forces(self, positions: np.ndarray) -> np.ndarray:
        """The harmonic model's forces at ``positions`` (T, N, 3)."""
        u = self.displacements(positions)
        n = len(self.positions)
        matrix = self.force_constants.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
        return -(u.reshape(len(u), 3 * n) @ matrix.T).reshape(u.shape)


def _phonons(ideal: Atoms, distance: float):
    """phonopy's finite displacements of ``ideal`` (the cell itself as the supercell)."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=ideal.get_chemical_symbols(),
        cell=ideal.cell[:],
        scaled_positions=ideal.get_scaled_positions(),
        masses=ideal.get_masses(),
    )
    phonons = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix="P")
    phonons.generate_displacements(distance=distance)
    return phonons


def displaced_count(ideal: Atoms, distance: float = DISPLACEMENT) -> int:
    """Structures the labeler labels for the harmonic model: the displaced ones and the ideal."""
    return len(_phonons(ideal, distance).supercells_with_displacements) + 1


def fit_harmonic(
    ideal: Atoms, forces_of: Callable[[Atoms], np.ndarray], distance: float = DISPLACEMENT
) -> tuple[Harmonic, int]:
    """Force constants of ``ideal`` by phonopy's finite displacements, each labeled by
    ``forces_of`` (and the ideal structure itself, whose residual forces are
    subtracted); returns the model and the number of structures labeled."""
    phonons = _phonons(ideal, distance)
    residual = np.asarray(forces_of(ideal), float)
    found = []
    for displaced in phonons.supercells_with_displacements:
        atoms = Atoms(
            displaced.symbols,
            cell=displaced.cell,
            pbc=True,
            scaled_positions=displaced.scaled_positions,
        )
        found.append(np.asarray(forces_of(atoms), float) - residual)
    phonons.forces = np.array(found)
    phonons.produce_force_constants(show_drift=False)
    fc = np.asarray(phonons.force_constants, float)
    harmonic = Harmonic(ideal.get_positions(), ideal.cell[:].copy(), fc, residual)
    return harmonic, len(found) + 1


def sigma_a_series(trajectory: Trajectory, harmonic: Harmonic) -> np.ndarray:
    """sigma^A of every state of ``trajectory`` (its forces less the ideal's residual)."""
    forces = trajectory.forces - harmonic.residual
    anharmonic = forces - harmonic.forces(trajectory.positions)
    return np.sqrt((anharmonic**2).sum(axis=(1, 2)) / (forces**2).sum(axis=(1, 2)))


def sigma_a(trajectory: Trajectory, harmonic: Harmonic) -> float:
    """The trajectory's sigma^A: the ratio over all its states together."""
    forces = trajectory.forces - harmonic.residual
    anharmonic = forces - harmonic.forces(trajectory.positions)
    return float(np.sqrt((anharmonic**2).sum() / (forces**2).sum()))
