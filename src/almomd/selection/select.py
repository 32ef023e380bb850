"""Selection of candidate frames for labeling, and the audit frames drawn beside them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from almomd.data.frames import min_interatomic_distance, system_of
from almomd.evaluation.statistics import Calibration
from almomd.selection.acceptance import (
    acceptance_probability,
    in_window,
    thresholds_by_system,
)
from almomd.selection.diversity import farthest_point, spread
from almomd.settings.sections import Selection


def draw_audit(table: pd.DataFrame, ok: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` frames per walker drawn uniformly among the ``ok`` frames after step 0."""
    chosen = []
    for _, group in table[ok & (table["step"] > 0).to_numpy()].groupby("walker"):
        pool = group.index.to_numpy()
        chosen.extend(rng.choice(pool, size=min(n, pool.size), replace=False).tolist())
    return np.array(sorted(chosen), dtype=int)


def select(
    frames: Sequence[Atoms],
    u: Sequence[float],
    calibration: Sequence[float],
    rule: Selection,
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
    ``too_correlated``, ``too_similar``, ``over_cap``, ``not_drawn`` or
    ``filled``: with ``rule.fill``, where fewer than ``rule.max_frames`` were
    accepted, the budget is met from the most uncertain frames not accepted, under
    the same spread rules; ``selected`` is true for them too).
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
        pick = farthest_point if rule.diversity == "features" else spread
        kept, passed = pick(frames, table, np.flatnonzero(accepted & window), rule)
        for i, reason in passed.items():
            decision[i] = reason
        decision[kept] = "selected"
        if rule.fill and len(kept) < rule.max_frames:  # the next most uncertain, same rules
            filled, _ = pick(frames, table, np.flatnonzero(ok & window & ~accepted), rule, kept)
            decision[filled] = "filled"
    else:
        raise ValueError(f"unknown selection method {rule.method!r}")
    table["decision"] = decision
    table["selected"] = table["decision"].isin(("selected", "filled"))
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
