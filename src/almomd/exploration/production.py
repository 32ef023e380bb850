"""Production MD with a trained ensemble, watching the uncertainty.

The ensemble mean drives the MD; every logged frame carries the ensemble energy,
forces and uncertainties. The threshold on the uncertainty comes from the
held-out frames of the chosen iteration (the test set for older campaigns):
mean + ``sigmas`` standard deviations of the per-frame uncertainty there; above
it the potential is outside its trained domain. Crossing it is reported
(``above_threshold`` in each frame, a warning in the log), and stops the run
when asked.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from almomd import layout
from almomd.data.frames import append_frame
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.exploration.md import MDSettings, snapshot, start_dynamics, stop_reason

log = logging.getLogger(__name__)


def trained_iterations(root: Path | str) -> list[int]:
    """The iterations of the campaign in ``root`` that have trained members."""
    return [
        n
        for n in layout.iterations(root)
        if list(layout.path(layout.MODELS, root, iteration=n).glob("*.nequip.*"))
    ]


def choose_iteration(root: Path | str) -> int:
    """The last converged iteration with models, else the last iteration with models."""
    iterations = trained_iterations(root)
    if not iterations:
        raise FileNotFoundError(
            f"no trained ensemble under {layout.path(layout.RESULTS, root)}; run the campaign first"
        )
    for n in reversed(iterations):
        decision = layout.current_decision(root, n)
        if decision.is_file() and json.loads(decision.read_text()).get("converged"):
            return n
    return iterations[-1]


def model_files(root: Path | str, iteration: int, members: list[tuple[int, int]]) -> list[Path]:
    """The ensemble of ``iteration``: one file per (subset, seed) of ``members``.

    A compiled member is preferred to its package. Raises FileNotFoundError
    naming every missing member: an ensemble with fewer members than the
    config's K x M would report a smaller (or zero) uncertainty.
    """
    files, missing = [], []
    for k, m in members:
        candidates = [
            layout.path(layout.member_file(iteration, k, m, compiled), root)
            for compiled in (True, False)
        ]
        found = [p for p in candidates if p.is_file()]
        if found:
            files.append(found[0])
        else:
            missing.append(str(candidates[1]))
    if missing:
        raise FileNotFoundError(
            f"iteration {iteration}'s ensemble lacks {len(missing)} of {len(members)} members "
            f"({', '.join(missing)}); run snakemake to rebuild them"
        )
    return files


def uncertainty_threshold(
    root: Path | str, iteration: int, key: str, sigmas: float, system: str | None = None
) -> float:
    """Mean + ``sigmas`` std of the uncertainty ``key`` of ``iteration`` on its held-out frames.

    With ``system``, on that system's held-out frames only (where it has at
    least 2; a defect's uncertainty must not set the bulk's threshold). Falls
    back to the test set for campaigns evaluated before held-out frames existed.
    """
    table = layout.path(layout.HELDOUT_TABLE, root, iteration=iteration)
    if not table.is_file():
        table = layout.path(layout.TEST_TABLE, root, iteration=iteration)
    if not table.is_file():
        raise FileNotFoundError(f"{table} is missing: the iteration was not evaluated")
    frames = pd.read_csv(table, dtype={"system": str})
    if system is not None and "system" in frames and (frames["system"] == system).sum() >= 2:
        frames = frames[frames["system"] == system]
    u = frames[key].to_numpy()
    return float(u.mean() + sigmas * u.std())


def run_production(
    start: Atoms,
    calculator: EnsembleCalculator,
    settings: MDSettings,
    threshold: float,
    stop_above: bool,
    out: Path | str,
    rng: np.random.Generator,
) -> dict:
    """Run MD and append every logged frame to ``out`` as it comes.

    Returns a summary: frames written, frames above the threshold, the first
    step above it, the largest uncertainty and why the run ended.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    key = settings.uncertainty_column
    settings = replace(settings, max_uncertainty=threshold if stop_above else None)
    atoms, dyn, start_volume = start_dynamics(start, calculator, settings, rng)
    started = time.perf_counter()
    summary = {"frames": 0, "above_threshold": 0, "first_above_step": None, "max_uncertainty": 0.0}
    reason = "completed"
    for step in range(0, settings.steps + 1, settings.log_interval):
        if step > 0:
            dyn.run(settings.log_interval)
        atoms.get_potential_energy()
        frame = snapshot(atoms, calculator, 0, step, settings)
        u = float(frame.info[key])
        frame.info["above_threshold"] = u > threshold
        append_frame(out, frame)
        summary["frames"] += 1
        summary["max_uncertainty"] = max(summary["max_uncertainty"], u)
        if u > threshold:
            summary["above_threshold"] += 1
            if summary["first_above_step"] is None:
                summary["first_above_step"] = step
                log.warning(
                    "step %d: uncertainty %s = %.4g above the threshold %.4g; the potential "
                    "is leaving its trained domain",
                    step,
                    key,
                    u,
                    threshold,
                )
        elapsed = time.perf_counter() - started
        rate = step / elapsed if elapsed > 0 and step else 0.0
        eta = (settings.steps - step) / rate if rate else float("nan")
        log.info(
            "step %d/%d (%.1f%%): T=%.0f K, E=%.4f eV, %s=%.4g, %.1f steps/s, ETA %.0f s",
            step,
            settings.steps,
            100.0 * step / max(settings.steps, 1),
            frame.info["md_temperature"],
            frame.info["ens_energy"],
            key,
            u,
            rate,
            eta,
        )
        reason = stop_reason(atoms, settings, start_volume, u)
        if reason != "completed":
            log.warning("stopped at step %d: %s", step, reason)
            break
    summary.update(reason=reason, threshold=threshold, seconds=time.perf_counter() - started)
    return summary
