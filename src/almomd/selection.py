"""Selection of candidate frames for labeling.

Active selection (ALmoMD's soft acceptance, with DP-GEN style trust window):

1. screening: frames with two atoms closer than ``min_distance`` are rejected
   (``too_close``), and so are frames whose ensemble energy per atom lies more
   than ``max_energy_above_mean`` above their walker's mean (``energy_outlier``),
   so that no DFT time is spent on broken geometries;
2. acceptance: a frame with uncertainty ``u`` is accepted with probability
   ``p = 0.5 * (1 + erf((u - mean - shift*std) / (gradient*std*sqrt(2))))``
   where ``mean`` and ``std`` come from a calibration set;
3. window: optionally only ``window_low <= u < window_high`` is kept;
4. diversity: in order of decreasing ``u``, a frame closer than
   ``min_frame_distance`` (RMS displacement) to an already selected one is dropped;
5. cap: at most ``max_frames`` frames.

The random baseline keeps step 1, then draws ``max_frames`` frames uniformly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ase import Atoms
from ase.geometry import find_mic

from almomd.data import min_interatomic_distance


@dataclass(frozen=True)
class SelectionRule:
    """Parameters of the selection (the ``selection`` config section)."""

    method: str = "active"
    shift: float = 2.0
    gradient: float = 1.0
    window_low: float | None = None
    window_high: float | None = None
    max_frames: int = 8
    min_distance: float = 1.0
    min_frame_distance: float = 0.05
    max_energy_above_mean: float | None = None


def acceptance_probability(
    u: np.ndarray | float, mean: float, std: float, shift: float, gradient: float
) -> np.ndarray:
    """ALmoMD's soft acceptance probability of uncertainties ``u``."""
    std = max(float(std), 1e-12)
    z = (np.asarray(u, dtype=float) - mean - shift * std) / (gradient * std * math.sqrt(2))
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(z))


def in_window(u: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Boolean mask of ``low <= u < high`` (a missing bound is open)."""
    u = np.asarray(u, dtype=float)
    mask = np.ones(u.shape, dtype=bool)
    if low is not None:
        mask &= u >= low
    if high is not None:
        mask &= u < high
    return mask


def frame_distance(a: Atoms, b: Atoms) -> float:
    """RMS displacement (minimum image, Angstrom) between two frames of one system.

    Frames with different atoms are infinitely far apart.
    """
    if len(a) != len(b) or a.get_chemical_symbols() != b.get_chemical_symbols():
        return math.inf
    displacement = b.get_positions() - a.get_positions()
    if any(a.pbc):
        displacement, _ = find_mic(displacement, a.get_cell(), a.get_pbc())
    return float(np.sqrt((displacement**2).sum(axis=1).mean()))


def diverse_subset(
    frames: Sequence[Atoms], order: Sequence[int], threshold: float, cap: int
) -> tuple[list[int], list[int]]:
    """Greedily keep frames in ``order`` that are at least ``threshold`` apart.

    Returns the kept indices (at most ``cap``) and the indices dropped as too similar.
    """
    kept: list[int] = []
    similar: list[int] = []
    for i in order:
        if len(kept) >= cap:
            break
        if all(frame_distance(frames[j], frames[i]) >= threshold for j in kept):
            kept.append(i)
        else:
            similar.append(i)
    return kept, similar


def select(
    frames: Sequence[Atoms],
    u: Sequence[float],
    calibration: Sequence[float],
    rule: SelectionRule,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Apply the selection rule and return a table with one row per candidate.

    Columns: ``al_id``, ``walker``, ``step``, ``uncertainty``, ``min_distance``,
    ``energy_per_atom``, ``energy_above_mean`` (of the walker), ``probability``,
    ``draw``, ``selected`` and ``decision`` (``selected``, ``too_close``,
    ``energy_outlier``, ``not_accepted``, ``outside_window``, ``too_similar``,
    ``over_cap`` or ``not_drawn``).
    """
    u_arr = np.asarray(u, dtype=float)
    n = len(frames)
    calibration = np.asarray(calibration, dtype=float)
    mean = float(calibration.mean()) if calibration.size else 0.0
    std = float(calibration.std()) if calibration.size else 0.0
    table = pd.DataFrame(
        {
            "al_id": [str(a.info.get("al_id", i)) for i, a in enumerate(frames)],
            "walker": [int(a.info.get("al_walker", -1)) for a in frames],
            "step": [int(a.info.get("al_step", -1)) for a in frames],
            "uncertainty": u_arr,
            "min_distance": [min_interatomic_distance(a) for a in frames],
            "energy_per_atom": [float(a.info.get("ens_energy", math.nan)) / len(a) for a in frames],
        }
    )
    table["energy_above_mean"] = table["energy_per_atom"] - table.groupby("walker")[
        "energy_per_atom"
    ].transform("mean")
    table["probability"] = (
        acceptance_probability(u_arr, mean, std, rule.shift, rule.gradient) if n else []
    )
    table["draw"] = rng.uniform(size=n)
    table["calibration_mean"] = mean
    table["calibration_std"] = std
    decision = np.full(n, "", dtype=object)
    ok = (table["min_distance"] >= rule.min_distance).to_numpy()
    decision[~ok] = "too_close"
    if rule.max_energy_above_mean is not None:
        outlier = ok & (table["energy_above_mean"] > rule.max_energy_above_mean).to_numpy()
        decision[outlier] = "energy_outlier"
        ok &= ~outlier
    if rule.method == "random":
        pool = np.flatnonzero(ok)
        chosen = rng.permutation(pool)[: rule.max_frames] if pool.size else pool
        decision[ok] = "not_drawn"
        decision[chosen] = "selected"
    elif rule.method == "active":
        accepted = ok & (table["draw"] < table["probability"]).to_numpy()
        decision[ok & ~accepted] = "not_accepted"
        window = in_window(u_arr, rule.window_low, rule.window_high)
        decision[accepted & ~window] = "outside_window"
        candidates = np.flatnonzero(accepted & window)
        order = candidates[np.argsort(-u_arr[candidates], kind="stable")]
        kept, similar = diverse_subset(frames, order, rule.min_frame_distance, rule.max_frames)
        decision[order] = "over_cap"
        decision[similar] = "too_similar"
        decision[kept] = "selected"
    else:
        raise ValueError(f"unknown selection method {rule.method!r}")
    table["decision"] = decision
    table["selected"] = table["decision"] == "selected"
    return table
