"""Selection of candidate frames for labeling.

Audit frames (for held-out truth, ``heldout.source: audit``) are drawn first:
``n`` frames per walker, uniformly from its screened frames after step 0, never
trained on. Then active selection (ALmoMD's soft acceptance, with DP-GEN style
trust window):

1. screening: frames with two atoms closer than ``min_distance`` are rejected
   (``too_close``), and so are frames whose ensemble energy per atom lies more
   than ``max_energy_above_mean`` above their walker's mean (``energy_outlier``),
   so that no DFT time is spent on broken geometries;
2. acceptance, ``erf``: a frame with uncertainty ``u`` is accepted with probability
   ``p = 0.5 * (1 + erf((u - mean - shift*std) / (gradient*std*sqrt(2))))``
   where ``mean`` and ``std`` come from a calibration set; ``calibrated``: a frame
   is accepted when the held-out calibration of the uncertainty says its error
   exceeds the target with at least ``calibrated_probability``
   (:class:`almomd.statistics.Calibration`); with several systems, each
   system's frames are judged by the calibration of its own frames
   (:func:`thresholds_by_system`);
3. window: optionally only ``window_low <= u < window_high`` is kept;
4. spreading the budget, in order of decreasing ``u``: with ``fair_share`` the
   walkers take turns (each walker's most uncertain admissible frame, then each
   one's second, ...); a frame within ``min_time_separation`` fs of MD time of
   a frame already selected from its walker is dropped (``too_correlated``), and
   so is one closer than ``min_frame_distance`` (RMS displacement, drift
   removed) to any selected frame (``too_similar``);
5. cap: at most ``max_frames`` frames (``over_cap``).

The random baseline keeps step 1, then draws ``max_frames`` frames uniformly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms
from ase.geometry import find_mic

from almomd.data import min_interatomic_distance
from almomd.statistics import Calibration
from almomd.systems import system_of


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
    min_frame_distance: float = 0.1
    min_time_separation: float = 100.0
    fair_share: bool = True
    max_energy_above_mean: float | None = None
    acceptance: str = "erf"
    calibrated_probability: float = 0.5


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

    The mean displacement (a drift of the whole cell) is removed. Frames with
    different atoms are infinitely far apart.
    """
    if len(a) != len(b) or a.get_chemical_symbols() != b.get_chemical_symbols():
        return math.inf
    displacement = b.get_positions() - a.get_positions()
    if any(a.pbc):
        displacement, _ = find_mic(displacement, a.get_cell(), a.get_pbc())
    displacement -= displacement.mean(axis=0)
    return float(np.sqrt((displacement**2).sum(axis=1).mean()))


def spread(
    frames: Sequence[Atoms],
    table: pd.DataFrame,
    candidates: np.ndarray,
    rule: SelectionRule,
) -> tuple[list[int], dict[int, str]]:
    """Pick at most ``rule.max_frames`` of ``candidates`` spread over walkers, time and space.

    Returns the kept indices and, for every candidate passed over, why
    (``too_correlated``, ``too_similar`` or ``over_cap``). See the module docstring.
    """
    u = table["uncertainty"].to_numpy()
    walker = table["walker"].to_numpy()
    time_fs = table["time_fs"].to_numpy()
    queues: dict[int, list[int]] = {}
    for i in sorted(candidates.tolist(), key=lambda i: -u[i]):
        queues.setdefault(int(walker[i]) if rule.fair_share else 0, []).append(i)
    kept: list[int] = []
    passed: dict[int, str] = {}

    def conflict(i: int) -> str | None:
        for j in kept:
            if walker[j] == walker[i] and abs(time_fs[j] - time_fs[i]) < rule.min_time_separation:
                return "too_correlated"
        for j in kept:
            if frame_distance(frames[j], frames[i]) < rule.min_frame_distance:
                return "too_similar"
        return None

    while queues and len(kept) < rule.max_frames:
        for key in sorted(queues, key=lambda k: -u[queues[k][0]]):
            queue = queues[key]
            while queue and len(kept) < rule.max_frames:
                i = queue.pop(0)
                reason = conflict(i)
                if reason is None:
                    kept.append(i)
                    break
                passed[i] = reason
        queues = {k: q for k, q in queues.items() if q}
    for queue in queues.values():
        passed.update(dict.fromkeys(queue, "over_cap"))
    return kept, passed


def draw_audit(table: pd.DataFrame, ok: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` frames per walker drawn uniformly among the ``ok`` frames after step 0."""
    chosen = []
    for _, group in table[ok & (table["step"] > 0).to_numpy()].groupby("walker"):
        pool = group.index.to_numpy()
        chosen.extend(rng.choice(pool, size=min(n, pool.size), replace=False).tolist())
    return np.array(sorted(chosen), dtype=int)


#: Calibration values a system needs for thresholds of its own (else the pooled ones apply).
MIN_OWN_CALIBRATION = 2


@dataclass(frozen=True)
class Thresholds:
    """The acceptance thresholds of one system's frames, and where they come from."""

    mean: float
    std: float
    calibrated: Calibration | None
    scope: str  # "system" (its own frames) or "pooled" (all systems' frames)


def thresholds_by_system(
    names: Sequence[str],
    calibration: Sequence[float],
    calibrated: Calibration | None,
    by_system: Mapping[str, Sequence[float]] | None = None,
    calibrated_by_system: Mapping[str, Calibration | None] | None = None,
) -> dict[str, Thresholds]:
    """Each system's calibration: from its own frames where it has enough, else pooled.

    A threshold calibrated on one system's frames must not decide another's:
    with ``by_system`` (and ``calibrated_by_system``) every system with at least
    :data:`MIN_OWN_CALIBRATION` values (a fitted calibration) is judged by its own.
    """
    pooled = np.asarray(calibration, dtype=float)
    found = {}
    for name in names:
        own = np.asarray((by_system or {}).get(name, []), dtype=float)
        values, scope = (own, "system") if own.size >= MIN_OWN_CALIBRATION else (pooled, "pooled")
        fit = (calibrated_by_system or {}).get(name)
        if fit is None:
            fit = calibrated
        found[name] = Thresholds(
            float(values.mean()) if values.size else 0.0,
            float(values.std()) if values.size else 0.0,
            fit,
            scope if by_system is not None else "campaign",
        )
    return found


def select(
    frames: Sequence[Atoms],
    u: Sequence[float],
    calibration: Sequence[float],
    rule: SelectionRule,
    rng: np.random.Generator,
    audit_per_walker: int = 0,
    calibrated: Calibration | None = None,
    target: float | None = None,
    calibration_by_system: Mapping[str, Sequence[float]] | None = None,
    calibrated_by_system: Mapping[str, Calibration | None] | None = None,
) -> pd.DataFrame:
    """Apply the selection rule and return a table with one row per candidate.

    ``calibration`` (the uncertainties the erf acceptance is calibrated on) and
    ``calibrated`` (the held-out fit of the error against the uncertainty)
    apply to every frame, unless ``calibration_by_system`` and
    ``calibrated_by_system`` give a frame's system (``al_system``) its own
    (see :func:`thresholds_by_system`).

    Columns: ``al_id``, ``walker``, ``system``, ``step``, ``time_fs``,
    ``uncertainty``, ``min_distance``, ``energy_per_atom``,
    ``energy_above_mean`` (of the walker), ``probability``, ``draw``,
    ``threshold`` (where ``probability`` is 0.5, or the calibrated threshold
    under ``calibrated`` acceptance), ``threshold_calibrated`` (the calibrated
    threshold whenever a calibration and ``target`` are given),
    ``calibration_mean``, ``calibration_std``, ``calibration_scope``,
    ``selected`` and ``decision`` (``selected``, ``audit``, ``too_close``,
    ``energy_outlier``, ``not_accepted``, ``outside_window``,
    ``too_correlated``, ``too_similar``, ``over_cap`` or ``not_drawn``).
    """
    u_arr = np.asarray(u, dtype=float)
    n = len(frames)
    table = pd.DataFrame(
        {
            "al_id": [str(a.info.get("al_id", i)) for i, a in enumerate(frames)],
            "walker": [int(a.info.get("al_walker", -1)) for a in frames],
            "system": [system_of(a) for a in frames],
            "step": [int(a.info.get("al_step", -1)) for a in frames],
            "time_fs": [float(a.info.get("md_time_fs", math.nan)) for a in frames],
            "uncertainty": u_arr,
            "min_distance": [min_interatomic_distance(a) for a in frames],
            "energy_per_atom": [float(a.info.get("ens_energy", math.nan)) / len(a) for a in frames],
        }
    )
    table["energy_above_mean"] = table["energy_per_atom"] - table.groupby("walker")[
        "energy_per_atom"
    ].transform("mean")
    names = list(dict.fromkeys(table["system"])) or [""]
    by_system = thresholds_by_system(
        names, calibration, calibrated, calibration_by_system, calibrated_by_system
    )
    for column in ("probability", "threshold", "threshold_calibrated"):
        table[column] = math.nan
    table["calibration_mean"] = 0.0
    table["calibration_std"] = 0.0
    table["calibration_scope"] = ""
    for name, rows in table.groupby("system").groups.items():
        t = by_system[name]
        u_rows = u_arr[table.index.get_indexer(rows)]
        fitted = (
            t.calibrated.threshold(target, rule.calibrated_probability)
            if t.calibrated is not None and target is not None
            else math.nan
        )
        if rule.acceptance == "calibrated":
            if math.isnan(fitted):
                raise ValueError(
                    "selection.acceptance calibrated needs a calibration of the uncertainty on "
                    "held-out frames and an error target (convergence.force_rmse)"
                )
            table.loc[rows, "probability"] = t.calibrated.probability_above(u_rows, target)
            table.loc[rows, "threshold"] = fitted
        else:
            table.loc[rows, "probability"] = acceptance_probability(
                u_rows, t.mean, t.std, rule.shift, rule.gradient
            )
            table.loc[rows, "threshold"] = t.mean + rule.shift * t.std
        table.loc[rows, "threshold_calibrated"] = fitted
        table.loc[rows, ["calibration_mean", "calibration_std"]] = [t.mean, t.std]
        table.loc[rows, "calibration_scope"] = t.scope
    table["draw"] = rng.uniform(size=n)
    decision = np.full(n, "", dtype=object)
    ok = (table["min_distance"] >= rule.min_distance).to_numpy().copy()
    decision[~ok] = "too_close"
    if rule.max_energy_above_mean is not None:
        outlier = ok & (table["energy_above_mean"] > rule.max_energy_above_mean).to_numpy()
        decision[outlier] = "energy_outlier"
        ok &= ~outlier
    if audit_per_walker:
        audit = draw_audit(table, ok, audit_per_walker, rng)
        decision[audit] = "audit"
        ok[audit] = False
    if rule.method == "random":
        pool = np.flatnonzero(ok)
        chosen = rng.permutation(pool)[: rule.max_frames] if pool.size else pool
        decision[ok] = "not_drawn"
        decision[chosen] = "selected"
    elif rule.method == "active":
        if rule.acceptance == "calibrated":
            accepted = ok & (table["probability"] >= rule.calibrated_probability).to_numpy()
        else:
            accepted = ok & (table["draw"] < table["probability"]).to_numpy()
        decision[ok & ~accepted] = "not_accepted"
        window = in_window(u_arr, rule.window_low, rule.window_high)
        decision[accepted & ~window] = "outside_window"
        kept, passed = spread(frames, table, np.flatnonzero(accepted & window), rule)
        for i, reason in passed.items():
            decision[i] = reason
        decision[kept] = "selected"
    else:
        raise ValueError(f"unknown selection method {rule.method!r}")
    table["decision"] = decision
    table["selected"] = table["decision"] == "selected"
    return table


def uncertain_fraction(table: pd.DataFrame) -> float:
    """Fraction of the screened explored frames at or above the flagging threshold.

    The threshold is the calibrated one where there is one (frames whose error
    likely exceeds the target), else the acceptance rule's midpoint.
    """
    screened = table[~table["decision"].isin(["too_close", "energy_outlier"])]
    if screened.empty:
        return math.nan
    threshold = screened["threshold_calibrated"].fillna(screened["threshold"])
    return float((screened["uncertainty"] >= threshold).mean())


def _single(values: pd.Series) -> float | None:
    """The value all rows share (``None`` if they differ or there is none; nan stays nan)."""
    unique = values.drop_duplicates()
    return float(unique.iloc[0]) if len(unique) == 1 else None


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Counts, thresholds and the uncertain fraction of a :func:`select` table.

    A threshold is reported where every frame had the same (one system, or
    pooled calibration); else see :func:`summary_by_system`.
    """
    return {
        "n_candidates": len(table),
        "n_selected": int(table["selected"].sum()),
        "n_audit": int((table["decision"] == "audit").sum()),
        "threshold": _single(table["threshold"]),
        "threshold_calibrated": _single(table["threshold_calibrated"]),
        "uncertain_fraction": uncertain_fraction(table),
    }


def summary_by_system(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """:func:`summary` of each system's frames, with where its thresholds came from."""
    return {
        str(name): summary(group) | {"calibration_scope": str(group["calibration_scope"].iloc[0])}
        for name, group in table.groupby("system", sort=False)
    }
