"""Held-out truth at the exploration conditions, and the ensemble's errors on it.

A potential must be judged on frames from the conditions it will run at. The
``heldout.source`` setting chooses where those frames come from:

``reference_md``
    short MD runs with the labeler itself at every exploration condition
    (temperature, and pressure under NPT), ``trajectories_per_condition``
    independent ones, starting from the campaign's structure, with frames at
    least an autocorrelation time apart (:mod:`almomd.evaluation.reference_md`).
    For cheap labelers (xTB, EMT, a reference MLIP): every MD step is a single point.
``file``
    labeled frames the user has anyway (aiMD: FHI-vibes ``trajectory.son``,
    extxyz, ...), taken as representing the exploration conditions.
``audit``
    every iteration, ``audit_per_walker`` frames drawn uniformly from each
    walker's trajectory are labeled together with the selected frames and never
    trained on. Iteration ``i`` is judged on the audit frames of explorations
    ``0 .. i-1``: the distribution the potential explores, at the cost of a few
    labels per walker and iteration. Iteration 0 has none yet and falls back to
    the test set.
``test_set``
    the fixed test set (split off the initial data unless ``test_set.file``):
    it does **not** represent MD at the exploration temperatures, and every
    verdict based on it says so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from almomd.evaluation import statistics
from almomd.settings.campaign import Condition

log = logging.getLogger(__name__)

#: Sources whose frames are at the exploration conditions.
COVERING_SOURCES = ("reference_md", "file", "audit")
#: ``al_source`` of audit frames (labeled, never trained on).
AUDIT = "audit"


def condition_label(found: Sequence[Condition], system: str, temperature: float) -> str:
    """The label of system ``system``'s condition at ``temperature`` among conditions ``found``."""
    for condition in found:
        if condition.system == system and math.isclose(condition.temperature, temperature):
            return condition.label
    return f"{temperature:g} K"


def trajectory_of(atoms: Atoms) -> str | None:
    """The trajectory a held-out frame comes from, the unit its intervals resample.

    Reference MD frames carry theirs (``al_trajectory``; one per condition in
    campaigns of earlier versions); an audit frame's is its walker's MD of its
    iteration; frames of the user's file carry ``al_trajectory`` where given.
    """
    info = atoms.info
    if "al_trajectory" in info:
        return str(info["al_trajectory"])
    if info.get("al_source") == AUDIT:
        return f"it{info.get('al_iteration')}-w{info.get('al_walker')}"
    if info.get("al_source") == "reference_md":
        return str(info.get("al_condition"))
    return None


def audit_frames(labeled: Sequence[Atoms]) -> list[Atoms]:
    """The audit frames among labeled frames."""
    return [a for a in labeled if a.info.get("al_source") == AUDIT]


def judged_frames(
    source: str, frame_files: Sequence[str], test_file: str
) -> tuple[list[Atoms], str]:
    """The frames an iteration is judged on, and their source.

    With ``audit`` the frames are the audit labels among ``frame_files`` (the
    label files of earlier iterations). Where there are no held-out frames
    (``test_set``, or no audit label yet) the test set's, as source ``test_set``.
    """
    from almomd.data.frames import read_frames

    frames = [a for f in frame_files for a in read_frames(f)]
    if source == "audit":
        frames = audit_frames(frames)
    if not frames:
        frames, source = read_frames(test_file), "test_set"
    return frames, source


def training_frames(labeled: Sequence[Atoms]) -> list[Atoms]:
    """Labeled frames that may be trained on (all but the audit frames)."""
    return [a for a in labeled if a.info.get("al_source") != AUDIT]


def _per_frame_sums(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    force_counts = 3.0 * table["n_atoms"].to_numpy(dtype=float)
    force_sq = table["force_rmse"].to_numpy(dtype=float) ** 2 * force_counts
    energy_sq = table["energy_error_per_atom"].to_numpy(dtype=float) ** 2
    return force_sq, force_counts, energy_sq


def _resampling(table: pd.DataFrame) -> dict[str, Any]:
    """How a bootstrap draws the table's frames: by ``trajectory`` within ``condition``."""
    groups = table.get("trajectory")
    strata = table["condition"] if groups is not None and "condition" in table else None
    return {"groups": groups, "strata": strata}


def errors(table: pd.DataFrame, rng: np.random.Generator) -> dict[str, Any]:
    """Frames, force and energy RMSE with their bootstrap intervals, of a per-frame table.

    Where the table has a ``trajectory`` column (the reference MD trajectory or
    the audit frame's walker), the intervals resample trajectories within each
    ``condition``, then frames (:func:`almomd.evaluation.statistics.resample`);
    ``n_eff`` is the effective number of independent frames.
    """
    force_sq, counts, energy_sq = _per_frame_sums(table)
    ones = np.ones(len(table))
    by = _resampling(table)
    return {
        "n_frames": len(table),
        "n_eff": statistics.effective_n(force_sq / np.maximum(counts, 1), **by),
        "force_rmse": statistics.rmse(force_sq, counts),
        "force_rmse_ci": list(statistics.rmse_interval(force_sq, counts, rng, **by)),
        "energy_rmse": statistics.rmse(energy_sq, ones),
        "energy_rmse_ci": list(statistics.rmse_interval(energy_sq, ones, rng, **by)),
    }


def error_for(metric: str) -> str:
    """The per-frame error column an uncertainty metric should rank."""
    return "energy_abs_error" if metric.startswith("energy") else "force_rmse"


def summarize(
    table: pd.DataFrame,
    rng: np.random.Generator,
    selection_key: str,
    force_target: float | None,
    energy_target: float | None,
    probability: float,
) -> dict[str, Any]:
    """Errors with bootstrap intervals, rank correlations and calibration on held-out frames.

    ``table`` is :func:`almomd.evaluation.evaluate`'s per-frame table (plus an
    optional ``condition`` column); ``selection_key`` the selection metric column
    (``u_force_max``); ``energy_abs_error`` is ``|energy_error_per_atom|``.
    The calibrated threshold is the uncertainty above which the frame's error
    exceeds the target (force target for force metrics, energy target for the
    energy metric) with ``probability``.
    """
    summary: dict[str, Any] = errors(table, rng) | {"level": statistics.LEVEL, "spearman": {}}
    for column in [c for c in table.columns if c.startswith("u_")]:
        metric = column[2:]
        summary["spearman"][metric] = statistics.spearman_interval(
            table[column], table[error_for(metric)], rng, **_resampling(table)
        ).to_dict()
    metric = selection_key[2:]
    target = energy_target if metric.startswith("energy") else force_target
    calibration = statistics.calibrate(table[selection_key], table[error_for(metric)])
    summary["selection_metric"] = metric
    summary["calibration"] = calibration.to_dict() if calibration else None
    summary["error_target"] = target
    summary["calibrated_probability"] = probability
    summary["calibrated_threshold"] = (
        calibration.threshold(target, probability) if calibration and target else None
    )
    if "condition" in table:
        summary["per_condition"] = {}
        for name, group in table.groupby("condition"):
            found = errors(group, rng)
            summary["per_condition"][str(name)] = {
                key: found[key] for key in ("n_frames", "n_eff", "force_rmse", "force_rmse_ci")
            }
    summary["error_to_uncertainty"] = error_to_uncertainty(table, selection_key)
    summary["novelty"] = _mean_novelty(table)
    if "system" in table:
        summary["per_system"] = {
            str(name): system_summary(group, rng, selection_key, target, probability)
            for name, group in table.groupby("system", sort=False)
        }
        for figures in summary["per_system"].values():  # 1: as confident as on all frames
            pooled = summary["error_to_uncertainty"]
            figures["overconfidence"] = figures["error_to_uncertainty"] / pooled
    return summary


def error_to_uncertainty(table: pd.DataFrame, selection_key: str) -> float:
    """The error (force RMSE, or energy RMSE for the energy metric) over the metric's RMS."""
    metric = selection_key[2:]
    force_sq, counts, energy_sq = _per_frame_sums(table)
    if metric.startswith("energy"):
        error = statistics.rmse(energy_sq, np.ones(len(table)))
    else:
        error = statistics.rmse(force_sq, counts)
    u = table[selection_key].to_numpy(dtype=float)
    u_rms = float(np.sqrt(np.mean(u**2))) if u.size else math.nan
    return error / u_rms if u_rms > 0 else math.nan


def _mean_novelty(table: pd.DataFrame) -> float | None:
    """The frames' mean novelty (their most novel atom's), where the ensemble gave it."""
    if "u_novelty" not in table or table.empty:
        return None
    return float(table["u_novelty"].mean())


def system_summary(
    table: pd.DataFrame,
    rng: np.random.Generator,
    selection_key: str,
    target: float | None,
    probability: float,
) -> dict[str, Any]:
    """Errors, ranking and calibration on one system's held-out frames.

    ``error_to_uncertainty`` is the error (force RMSE, or energy RMSE for the
    energy metric) over the root mean square of the selection metric: where it
    is larger than on another system, the ensemble is overconfident there.
    ``novelty`` is the frames' mean novelty (:mod:`almomd.ensemble.novelty`).
    """
    figures = errors(table, rng)
    metric = selection_key[2:]
    u = table[selection_key].to_numpy(dtype=float)
    u_rms = float(np.sqrt(np.mean(u**2))) if u.size else math.nan
    rho = statistics.spearman_interval(
        table[selection_key], table[error_for(metric)], rng, **_resampling(table)
    )
    calibration = statistics.calibrate(table[selection_key], table[error_for(metric)])
    return figures | {
        "uncertainty_rms": u_rms,
        "error_to_uncertainty": error_to_uncertainty(table, selection_key),
        "novelty": _mean_novelty(table),
        "spearman": rho.to_dict(),
        "calibration": calibration.to_dict() if calibration else None,
        "calibrated_threshold": (
            calibration.threshold(target, probability) if calibration and target else None
        ),
    }


def threshold_quality(
    table: pd.DataFrame, key: str, thresholds: dict[str, Any], target: float | None
) -> dict[str, Any]:
    """Precision and recall of the selection's thresholds on held-out frames.

    ``thresholds`` holds ``threshold`` (the acceptance rule's) and
    ``threshold_calibrated``; a frame is truly bad when its error (force RMSE,
    or absolute energy error per atom for the energy metric) exceeds ``target``.
    """
    if target is None or table.empty:
        return {}
    error = table[error_for(key[2:])].to_numpy()
    quality = {}
    for name in ("threshold", "threshold_calibrated"):
        value = thresholds.get(name)
        if value is not None and not math.isnan(value):
            quality[name] = statistics.separation(table[key], error, value, target).to_dict()
    return quality


def status_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The held-out figures of a :func:`summarize` result under their status keys."""
    rho = summary["spearman"].get(summary["selection_metric"], {})
    return {
        "heldout_source": summary["source"],
        "heldout_covers_conditions": summary["covers_conditions"],
        "heldout_n": summary["n_frames"],
        "heldout_n_eff": summary.get("n_eff"),  # summaries of earlier versions lack it
        "heldout_force_rmse": summary["force_rmse"],
        "heldout_force_rmse_ci": summary["force_rmse_ci"],
        "heldout_energy_rmse": summary["energy_rmse"],
        "heldout_energy_rmse_ci": summary["energy_rmse_ci"],
        "spearman_heldout": rho.get("rho"),
        "spearman_heldout_ci": [rho.get("low"), rho.get("high")],
    }
