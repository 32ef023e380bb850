"""The campaign's status, read from the files of a results directory."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from almomd.data import read_frames

KEYS = (
    "iteration",
    "n_train",
    "n_candidates",
    "n_selected",
    "n_labeled",
    "n_failed",
    "test_energy_rmse",
    "test_force_rmse",
    "mean_force_uncertainty",
    "converged",
    "reason",
)


def _count(path: Path) -> int | None:
    return len(read_frames(path)) if path.exists() else None


def _count_all(paths: list[Path]) -> int | None:
    return sum(len(read_frames(p)) for p in paths) if paths else None


def iteration_status(results: Path, iteration: int) -> dict[str, Any]:
    """Status of one iteration; values not yet computed are ``None``."""
    base = results / f"iter_{iteration}"
    row: dict[str, Any] = dict.fromkeys(KEYS)
    row["iteration"] = iteration
    row["n_train"] = _count(base / "train.extxyz")
    table = base / "selection" / "candidates.csv"
    if table.exists() and table.stat().st_size:
        candidates = pd.read_csv(table)
        row["n_candidates"] = len(candidates)
        row["n_selected"] = int(candidates["selected"].sum()) if len(candidates) else 0
    row["n_labeled"] = _count_all(sorted((base / "labels").glob("labeled_*.extxyz")))
    row["n_failed"] = _count_all(sorted((base / "labels").glob("failed_*.extxyz")))
    metrics_file = base / "eval" / "metrics.json"
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        row["test_energy_rmse"] = metrics["energy_rmse"]
        row["test_force_rmse"] = metrics["force_rmse"]
        row["mean_force_uncertainty"] = metrics["mean_u_force_mean"]
    decision_file = base / "decision.json"
    if decision_file.exists():
        decision = json.loads(decision_file.read_text())
        row["converged"] = decision["converged"]
        row["reason"] = decision["reason"]
        if decision["stop"]:
            row["n_labeled"] = row["n_labeled"] or 0
            row["n_failed"] = row["n_failed"] or 0
    return row


def campaign_status(results: Path | str = "results") -> list[dict[str, Any]]:
    """Status of every iteration found under ``results``, in order."""
    results = Path(results)
    iterations = sorted(
        int(m.group(1))
        for p in results.glob("iter_*")
        if (m := re.fullmatch(r"iter_(\d+)", p.name))
    )
    return [iteration_status(results, i) for i in iterations]


def write_status(results: Path | str, out: Path | str) -> None:
    """Write the campaign status as JSON to ``out``."""
    Path(out).write_text(json.dumps(campaign_status(results), indent=2) + "\n")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Human-readable table of the campaign status."""
    headers = [
        "iter",
        "train",
        "explored",
        "selected",
        "labeled",
        "failed",
        "E rmse eV/at",
        "F rmse eV/A",
        "mean u_F",
        "converged",
    ]
    keys = KEYS[:-1]
    body = [[_fmt(row[k]) for k in keys] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    for row in rows:
        if row["reason"]:
            lines.append(f"iteration {row['iteration']}: {row['reason']}")
    if not rows:
        lines.append("no iteration found (has the workflow run in this directory?)")
    return "\n".join(lines)
