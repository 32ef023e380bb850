"""Evaluation of an ensemble on the fixed test set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from ase import Atoms

from almomd.data.frames import system_of
from almomd.ensemble.calculator import EnsembleCalculator, predict


def evaluate(
    calculator: EnsembleCalculator, frames: Sequence[Atoms]
) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Compare ensemble predictions with the labels of ``frames``.

    Returns
    -------
    table, metrics, forces
        One row per frame (reference and predicted energy, per-frame force RMSE,
        every uncertainty); the summary: energy MAE/RMSE per atom (eV/atom),
        force component MAE/RMSE (eV/Angstrom) and the mean uncertainties; and
        every force component as rows ``(reference, predicted)`` for parity plots.
    """
    rows = []
    force_errors = []
    force_pairs = []
    for atoms in frames:
        reference_e = float(atoms.get_potential_energy())
        reference_f = np.asarray(atoms.get_forces())
        energy, forces, u = predict(calculator, atoms)
        error = forces - reference_f
        force_errors.append(error.ravel())
        force_pairs.append(np.column_stack([reference_f.ravel(), forces.ravel()]))
        n = len(atoms)
        rows.append(
            {
                "al_id": atoms.info.get("al_id", ""),
                "system": system_of(atoms),
                "n_atoms": n,
                "energy_ref": reference_e,
                "energy_pred": energy,
                "energy_error_per_atom": (energy - reference_e) / n,
                "force_rmse": float(np.sqrt((error**2).mean())),
                **{f"u_{key}": value for key, value in u.items()},
            }
        )
    table = pd.DataFrame(rows)
    errors = np.concatenate(force_errors) if force_errors else np.zeros(0)
    e_err = table["energy_error_per_atom"].to_numpy()
    metrics = {
        "n_frames": len(frames),
        "n_members": len(calculator),
        "energy_mae": float(np.abs(e_err).mean()),
        "energy_rmse": float(np.sqrt((e_err**2).mean())),
        "force_mae": float(np.abs(errors).mean()),
        "force_rmse": float(np.sqrt((errors**2).mean())),
        **{
            f"mean_u_{key}": float(table[f"u_{key}"].mean())
            for key in ("energy", "force_mean", "force_max")
        },
    }
    pairs = np.concatenate(force_pairs) if force_pairs else np.zeros((0, 2))
    return table, metrics, pairs
