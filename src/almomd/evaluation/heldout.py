"""Held-out truth at the exploration conditions, and the ensemble's errors on it.

A potential must be judged on frames from the conditions it will run at. The
``heldout.source`` setting chooses where those frames come from:

``reference_md``
    a short MD with the labeler itself at every exploration condition
    (temperature, and pressure under NPT), starting from the campaign's
    structure; after ``equilibration_steps`` one frame every ``steps_between``
    steps is kept, ``frames_per_condition`` per condition. For cheap labelers
    (xTB, EMT, a reference MLIP): every MD step is a single point.
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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms

from almomd.data.frames import labeled_copy, min_interatomic_distance, write_frames
from almomd.evaluation import statistics
from almomd.exploration.md import MDSettings, start_dynamics
from almomd.labeling.labelers import Labeler
from almomd.labeling.single_points import single_point, wants_stress
from almomd.settings.campaign import Condition
from almomd.settings.sections import Exploration

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


def reference_md(
    start: Atoms,
    labeler: Labeler,
    md: MDSettings,
    condition: Condition,
    n_frames: int,
    equilibration_steps: int,
    steps_between: int,
    rng: np.random.Generator,
    out: str,
    stress: bool = False,
) -> list[Atoms]:
    """Run MD with the labeler itself and write the kept, labeled frames to ``out``.

    The MD stops early (keeping what it has) when the labeler fails or the
    structure becomes unphysical; fewer than two kept frames is an error.
    """
    directory = labeler_directory(out)
    calc = labeler.calculator(directory)
    atoms, dyn, _ = start_dynamics(start, calc, md, rng)
    label = condition.label
    frames: list[Atoms] = []
    started = time.perf_counter()
    step = 0
    total = equilibration_steps + steps_between * (n_frames - 1)
    reason = "completed"
    while len(frames) < n_frames:
        chunk = steps_between if frames else equilibration_steps
        try:
            dyn.run(chunk)
            step += chunk
            energy, forces, sigma = single_point(atoms, calc, wants_stress(atoms, calc, stress))
        except Exception as exc:  # a code fails in its own way; keep the frames so far
            reason = f"labeler failed at step {step}: {type(exc).__name__}: {exc}"
            break
        if (
            not np.isfinite(atoms.positions).all()
            or min_interatomic_distance(atoms) < md.min_distance
        ):
            reason = f"unphysical structure at step {step}"
            break
        frames.append(
            labeled_copy(
                atoms,
                energy,
                forces,
                sigma,
                al_id=f"ref-c{condition.index}-s{step:06d}",
                al_source="reference_md",
                al_step=step,
                al_labeler=labeler.name,
                al_condition=label,
                al_system=condition.system,
            )
        )
        elapsed = time.perf_counter() - started
        left = elapsed / step * (total - step) if step else 0.0
        log.info(
            "reference MD %s: frame %d/%d at step %d, T=%.0f K (%.0f s, about %.0f s left)",
            label, len(frames), n_frames, step, atoms.get_temperature(), elapsed, left,
        )  # fmt: skip
    if reason != "completed":
        log.warning("reference MD %s stopped: %s", label, reason)
    if len(frames) < 2:
        raise RuntimeError(
            f"reference MD at {label} kept {len(frames)} frame(s) ({reason}); held-out truth needs "
            "at least 2: check the labeler (see the log), or use heldout.source: audit or file"
        )
    write_frames(out, frames)
    return frames


def labeler_directory(out: str) -> Path:
    """Where the reference MD's labeler runs (next to its output)."""
    path = Path(out)
    return path.parent / "calc" / path.stem


def reference_settings(exploration: Exploration, condition: Condition) -> MDSettings:
    """MD settings of the reference MD at ``condition`` (thermostat as in exploration)."""
    return MDSettings(
        thermostat=exploration.thermostat,
        temperature=condition.temperature,
        timestep=exploration.timestep,
        friction=exploration.friction,
        steps=0,
        log_interval=1,
        min_distance=exploration.min_distance,
        pressure=exploration.pressure,
        barostat_time=exploration.barostat_time,
    )


def audit_frames(labeled: Sequence[Atoms]) -> list[Atoms]:
    """The audit frames among labeled frames."""
    return [a for a in labeled if a.info.get("al_source") == AUDIT]


def training_frames(labeled: Sequence[Atoms]) -> list[Atoms]:
    """Labeled frames that may be trained on (all but the audit frames)."""
    return [a for a in labeled if a.info.get("al_source") != AUDIT]


def _per_frame_sums(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    force_counts = 3.0 * table["n_atoms"].to_numpy(dtype=float)
    force_sq = table["force_rmse"].to_numpy(dtype=float) ** 2 * force_counts
    energy_sq = table["energy_error_per_atom"].to_numpy(dtype=float) ** 2
    return force_sq, force_counts, energy_sq


def errors(table: pd.DataFrame, rng: np.random.Generator) -> dict[str, Any]:
    """Frames, force and energy RMSE with their bootstrap intervals, of a per-frame table."""
    force_sq, counts, energy_sq = _per_frame_sums(table)
    ones = np.ones(len(table))
    return {
        "n_frames": len(table),
        "force_rmse": statistics.rmse(force_sq, counts),
        "force_rmse_ci": list(statistics.rmse_interval(force_sq, counts, rng)),
        "energy_rmse": statistics.rmse(energy_sq, ones),
        "energy_rmse_ci": list(statistics.rmse_interval(energy_sq, ones, rng)),
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
            table[column], table[error_for(metric)], rng
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
            sq, n, _ = _per_frame_sums(group)
            summary["per_condition"][str(name)] = {
                "n_frames": len(group),
                "force_rmse": statistics.rmse(sq, n),
                "force_rmse_ci": list(statistics.rmse_interval(sq, n, rng)),
            }
    if "system" in table:
        summary["per_system"] = {
            str(name): system_summary(group, rng, selection_key, target, probability)
            for name, group in table.groupby("system", sort=False)
        }
    return summary


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
    """
    figures = errors(table, rng)
    metric = selection_key[2:]
    u = table[selection_key].to_numpy(dtype=float)
    error = figures["energy_rmse" if metric.startswith("energy") else "force_rmse"]
    u_rms = float(np.sqrt(np.mean(u**2))) if u.size else math.nan
    rho = statistics.spearman_interval(table[selection_key], table[error_for(metric)], rng)
    calibration = statistics.calibrate(table[selection_key], table[error_for(metric)])
    return figures | {
        "uncertainty_rms": u_rms,
        "error_to_uncertainty": error / u_rms if u_rms > 0 else math.nan,
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
        "heldout_force_rmse": summary["force_rmse"],
        "heldout_force_rmse_ci": summary["force_rmse_ci"],
        "heldout_energy_rmse": summary["energy_rmse"],
        "heldout_energy_rmse_ci": summary["energy_rmse_ci"],
        "spearman_heldout": rho.get("rho"),
        "spearman_heldout_ci": [rho.get("low"), rho.get("high")],
    }
