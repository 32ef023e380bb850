"""Uncertainty metrics of an ensemble's predictions, and their table columns."""

from __future__ import annotations

import numpy as np

METRICS = ("energy", "force_mean", "force_max")
_EPS = 1e-12


def uncertainties(energies: np.ndarray, forces: np.ndarray) -> dict[str, float]:
    """Return every uncertainty metric, absolute and relative, for one frame.

    Parameters
    ----------
    energies
        Member energies, shape ``(M,)`` (eV).
    forces
        Member forces, shape ``(M, N, 3)`` (eV/Angstrom).

    Returns
    -------
    dict
        ``energy``, ``force_mean``, ``force_max`` and the same with ``_rel``.
    """
    energies = np.asarray(energies, dtype=float)
    forces = np.asarray(forces, dtype=float)
    n_atoms = forces.shape[1]
    mean_forces = forces.mean(axis=0)
    sigma = np.sqrt(((forces - mean_forces) ** 2).sum(axis=2).mean(axis=0))
    absolute = {
        "energy": float(energies.std() / n_atoms),
        "force_mean": float(sigma.mean()),
        "force_max": float(sigma.max()),
    }
    energy_scale = abs(float(energies.mean())) / n_atoms
    force_scale = float(np.linalg.norm(mean_forces, axis=1).mean())
    relative = {
        "energy_rel": absolute["energy"] / max(energy_scale, _EPS),
        "force_mean_rel": absolute["force_mean"] / max(force_scale, _EPS),
        "force_max_rel": absolute["force_max"] / max(force_scale, _EPS),
    }
    return absolute | relative
