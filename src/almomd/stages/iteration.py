"""The steps that judge an iteration: test set and held-out evaluation, selection, the decision."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from almomd.data.frames import read_frames, system_of, write_frames, write_json
from almomd.evaluation import convergence, heldout, statistics
from almomd.evaluation.test_set import evaluate as evaluate_ensemble
from almomd.seeds import rng_for
from almomd.selection import select
from almomd.settings import systems
from almomd.settings.sections import Settings
from almomd.stages.exploration import ensemble

log = logging.getLogger(__name__)


def evaluate(
    settings: Settings,
    *,
    model_files: Sequence[str],
    test_file: str,
    out_metrics: str,
    out_table: str,
    out_forces: str,
    novelty_file: str | None = None,
) -> None:
    """Evaluate the ensemble on the test set."""
    frames = read_frames(test_file)
    calc = ensemble(settings, model_files, novelty_file=novelty_file)
    table, metrics, forces = evaluate_ensemble(calc, frames)
    table.to_csv(out_table, index=False)
    np.savetxt(out_forces, forces, header="reference predicted (eV/Angstrom)", fmt="%.6g")
    write_json(out_metrics, metrics)
    log.info("test set: %s", metrics)


def evaluate_heldout(
    settings: Settings,
    *,
    iteration: int,
    model_files: Sequence[str],
    test_file: str,
    frame_files: Sequence[str],
    out_summary: str,
    out_table: str,
    novelty_file: str | None = None,
) -> dict[str, Any]:
    """Evaluate the ensemble on the held-out frames: errors with intervals, calibration.

    With ``heldout.source: audit`` the frames are the audit labels among
    ``frame_files`` (the label files of earlier iterations). Where there are no
    held-out frames (``test_set``, or no audit label yet) the test set is used
    and flagged as not covering the exploration conditions.
    """
    frames, source = heldout.judged_frames(settings.heldout.source, frame_files, test_file)
    covers = source in heldout.COVERING_SOURCES
    systems.tag(frames, settings.structures())
    calc = ensemble(settings, model_files, novelty_file=novelty_file)
    table, metrics, _ = evaluate_ensemble(calc, frames)
    table["condition"] = [str(a.info.get("al_condition", "unknown")) for a in frames]
    trajectories = [heldout.trajectory_of(a) for a in frames]
    if any(t is not None for t in trajectories):  # else every frame is its own unit
        table["trajectory"] = [t or f"frame-{i}" for i, t in enumerate(trajectories)]
    table["energy_abs_error"] = table["energy_error_per_atom"].abs()
    table.to_csv(out_table, index=False)
    targets = settings.convergence
    summary = {
        "iteration": iteration,
        "source": source,
        "covers_conditions": covers,
        "n_members": metrics["n_members"],
        **heldout.summarize(
            table,
            rng_for(settings.seed, "bootstrap", iteration),
            settings.uncertainty.column,
            targets.force_rmse,
            targets.energy_rmse,
            settings.selection.calibrated_probability,
        ),
    }
    write_json(out_summary, summary)
    log.info(
        "held-out (%s, %d frames): force RMSE %.4g eV/A, CI %s",
        source, len(frames), summary["force_rmse"], summary["force_rmse_ci"],
    )  # fmt: skip
    return summary


def select_frames(
    settings: Settings,
    *,
    iteration: int,
    walker_files: Sequence[str],
    test_table: str,
    heldout_summary: str,
    heldout_table: str,
    out_frames: str,
    out_table: str,
    out_summary: str,
) -> None:
    """Select the frames of iteration ``iteration`` to label (and draw its audit frames)."""
    key = settings.uncertainty.column
    trajectories = [read_frames(f) for f in walker_files]
    frames = [a for trajectory in trajectories for a in trajectory]
    u = [float(a.info[key]) for a in frames]
    rule = settings.selection
    if rule.calibration == "walker_start":
        n_start = rule.calibration_frames
        start = [a for trajectory in trajectories for a in trajectory[:n_start]]
        calibration = pd.DataFrame(
            {"system": [system_of(a) for a in start], key: [a.info[key] for a in start]}
        )
    else:
        table_file = test_table if rule.calibration == "test_set" else heldout_table
        calibration = pd.read_csv(table_file, dtype={"system": str})
    held = json.loads(Path(heldout_summary).read_text())
    fit = held["calibration"]
    own_fits = {
        name: statistics.Calibration(**figures["calibration"])
        for name, figures in held.get("per_system", {}).items()
        if figures.get("calibration")
    }
    audit = settings.heldout.audit_per_walker if settings.heldout.source == "audit" else 0
    table = select.select(
        frames,
        u,
        calibration[key].to_numpy(dtype=float),
        rule,
        rng_for(settings.seed, "select", iteration),
        audit_per_walker=audit,
        calibrated=statistics.Calibration(**fit) if fit else None,
        target=held["error_target"],
        calibration_by_system={
            str(name): group[key].to_numpy(dtype=float)
            for name, group in calibration.groupby("system")
        }
        if "system" in calibration  # tables of older versions have no system column
        else None,
        calibrated_by_system=own_fits,
    )
    table["metric"] = key[2:]
    table.to_csv(out_table, index=False)
    chosen, walkers = [], settings.walkers()
    for i in table.index[table["selected"] | (table["decision"] == "audit")]:
        atoms = frames[i]
        source = "audit" if table.at[i, "decision"] == "audit" else rule.method
        spec = walkers[int(atoms.info["al_walker"])]
        condition = heldout.condition_label(settings.conditions(), spec.system, spec.temperature)
        atoms.info.update(al_source=source, al_uncertainty=u[i], al_condition=condition)
        chosen.append(atoms)
    write_frames(out_frames, chosen)
    counts = table["decision"].value_counts().to_dict()
    write_json(
        out_summary,
        {"iteration": iteration, "metric": key[2:]}
        | select.summary(table)
        | {"decisions": counts, "per_system": select.summary_by_system(table)},
    )
    fraction = select.uncertain_fraction(table)
    log.info(
        "iteration %d: %d candidates, decisions %s, uncertain fraction %.3g",
        iteration, len(frames), counts, fraction,
    )  # fmt: skip


def decide(
    settings: Settings,
    *,
    iteration: int,
    metrics_file: str,
    heldout_summary: str,
    heldout_table: str,
    selection_summaries: Sequence[str],
    out: str,
    campaign: dict[str, Any] | None = None,
    number: int = 1,
    changes: Sequence[str] = (),
    observable_files: Sequence[str] = (),
) -> None:
    """Write the convergence decision of iteration ``iteration``.

    ``observable_files``: the iteration's observables at every condition
    (:func:`almomd.stages.observables.observables`); ``convergence.observables``
    must agree in all of them, and any that disagrees is named in the reason.

    ``selection_summaries`` are those of iterations ``0 .. iteration``, in order.
    ``campaign``, the whole configuration, is recorded as the iteration's settings
    (``almomd status`` compares it with the current one). ``number`` > 1: the
    iteration is decided again (its ``number``-th decision) because the stop
    rules changed as ``changes`` say; the decision records both.
    """
    metrics = json.loads(Path(metrics_file).read_text())
    held = json.loads(Path(heldout_summary).read_text())
    summaries = [json.loads(Path(f).read_text()) for f in selection_summaries]
    current = summaries[-1]
    fractions = [math.nan if s["uncertain_fraction"] is None else s["uncertain_fraction"]
                 for s in summaries]  # fmt: skip
    decision = convergence.decide(
        iteration,
        settings.max_iterations,
        held,
        fractions,
        current["n_selected"],
        settings.convergence,
        [json.loads(Path(f).read_text()) for f in observable_files],
    )
    key = settings.uncertainty.column
    target = held["error_target"]
    table = pd.read_csv(heldout_table, dtype={"system": str})
    payload = decision.to_dict() | {
        "n_selected": current["n_selected"],
        "n_audit": current["n_audit"],
        "test_force_rmse": metrics["force_rmse"],
        "test_energy_rmse": metrics["energy_rmse"],
        **heldout.status_figures(held),
        "uncertain_fraction": current["uncertain_fraction"],
        "thresholds": heldout.threshold_quality(table, key, current, target),
        "thresholds_by_system": {
            name: heldout.threshold_quality(table[table["system"] == name], key, figures, target)
            for name, figures in current.get("per_system", {}).items()
        }
        if "system" in table
        else {},
        "settings": campaign,
        "observables": list(observable_files),  # what it was made from (almomd.lineage)
    }
    if number > 1:
        payload["redecision"] = {"number": number, "changes": list(changes)}
        log.info("iteration %d decided again (decision %d) under changed stop rules: %s",
                 iteration, number, "; ".join(changes))  # fmt: skip
    write_json(out, payload)
    log.info("iteration %d: %s", iteration, decision.reason)
