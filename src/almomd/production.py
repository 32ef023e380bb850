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

from almomd.data import append_frame
from almomd.ensemble import EnsembleCalculator
from almomd.md import MDSettings, snapshot, start_dynamics, stop_reason

log = logging.getLogger(__name__)


def _iterations(results: Path) -> list[int]:
    numbers = [int(d.name.split("_")[1]) for d in results.glob("iter_*") if d.is_dir()]
    return sorted(n for n in numbers if list((results / f"iter_{n}" / "models").glob("*.nequip.*")))


def choose_iteration(results: Path | str) -> int:
    """The last converged iteration with models, else the last iteration with models."""
    results = Path(results)
    iterations = _iterations(results)
    if not iterations:
        raise FileNotFoundError(f"no trained ensemble under {results}; run the campaign first")
    for n in reversed(iterations):
        decision = results / f"iter_{n}" / "decision.json"
        if decision.is_file() and json.loads(decision.read_text()).get("converged"):
            return n
    return iterations[-1]


def model_files(results: Path | str, iteration: int) -> list[Path]:
    """The ensemble members of ``iteration`` (compiled models preferred)."""
    directory = Path(results) / f"iter_{iteration}" / "models"
    compiled = sorted(directory.glob("*.nequip.pt2"))
    files = compiled or sorted(directory.glob("*.nequip.zip"))
    if not files:
        raise FileNotFoundError(f"no models in {directory}")
    return files


def uncertainty_threshold(results: Path | str, iteration: int, key: str, sigmas: float) -> float:
    """Mean + ``sigmas`` std of the uncertainty ``key`` of ``iteration`` on its held-out frames.

    Falls back to the test set for campaigns evaluated before held-out frames existed.
    """
    evaluation = Path(results) / f"iter_{iteration}" / "eval"
    table = evaluation / "heldout_predictions.csv"
    if not table.is_file():
        table = evaluation / "test_predictions.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table} is missing: the iteration was not evaluated")
    u = pd.read_csv(table)[f"u_{key}"].to_numpy()
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
    key = settings.uncertainty_key
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
        u = float(frame.info[f"u_{key}"])
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
