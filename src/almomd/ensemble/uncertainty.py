"""Uncertainty metrics of an ensemble's predictions, and their table columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from almomd.ensemble.error_model import ErrorModel
from almomd.ensemble.novelty import combined

#: Metrics of the spread and novelty combined by the error model fitted on held-out atoms.
ERROR_MODEL_METRICS = ("force_error", "force_error_max")
METRICS = ("energy", "force_mean", "force_max", "novelty", "force_max_novelty",
           *ERROR_MODEL_METRICS)  # fmt: skip
#: Metrics that need the ensemble's novelty reference (no relative kind).
NOVELTY_METRICS = ("novelty", "force_max_novelty", *ERROR_MODEL_METRICS)
_EPS = 1e-12


def force_spread(forces: np.ndarray) -> np.ndarray:
    """Each atom's force spread over the members ``(N,)``: RMS deviation from the mean."""
    forces = np.asarray(forces, dtype=float)
    return np.sqrt(((forces - forces.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0))


def uncertainties(
    energies: np.ndarray,
    forces: np.ndarray,
    novelty: np.ndarray | None = None,
    error_model: ErrorModel | None = None,
) -> dict[str, float]:
    """Return every uncertainty metric, absolute and relative, for one frame.

    Parameters
    ----------
    energies
        Member energies, shape ``(M,)`` (eV).
    forces
        Member forces, shape ``(M, N, 3)`` (eV/Angstrom).
    novelty
        Per-atom novelty ``(N,)`` (:mod:`almomd.ensemble.novelty`), where the
        ensemble has a novelty reference.
    error_model
        The per-atom error model fitted on held-out atoms
        (:mod:`almomd.ensemble.error_model`), where the reference has one.

    Returns
    -------
    dict
        ``energy``, ``force_mean``, ``force_max`` and the same with ``_rel``;
        with ``novelty`` also ``novelty`` (its largest atom value) and
        ``force_max_novelty``; with ``error_model`` too ``force_error`` (the
        predicted force RMSE, eV/A) and ``force_error_max`` (its largest atom).
    """
    energies = np.asarray(energies, dtype=float)
    forces = np.asarray(forces, dtype=float)
    n_atoms = forces.shape[1]
    mean_forces = forces.mean(axis=0)
    sigma = force_spread(forces)
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
    found = absolute | relative
    if novelty is not None:
        found |= {"novelty": float(np.max(novelty)), "force_max_novelty": combined(sigma, novelty)}
        if error_model is not None:
            found |= error_model.frame(sigma, novelty)
    return found


def atom_errors(calc, frames) -> pd.DataFrame:
    """What the error model is fitted on: per atom of the labeled ``frames``, its system,
    frame, force spread, novelty and force error magnitude under the ensemble ``calc`` (an
    :class:`~almomd.ensemble.calculator.EnsembleCalculator` with a novelty reference), and
    the frame's energy spread per atom."""
    from almomd.data.frames import system_of

    rows = []
    for k, truth in enumerate(frames):
        atoms = truth.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        rows.append(pd.DataFrame({
            "system": system_of(truth), "frame": k,
            "sigma": force_spread(calc.results["member_forces"]),
            "novelty": calc.results["novelty"],
            "error": np.linalg.norm(calc.results["forces"] - truth.get_forces(), axis=1),
            "energy": calc.results["uncertainty"]["energy"],
        }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)
