"""The per-iteration decision: stop (converged or out of iterations) or go on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    """Outcome of one iteration's convergence check."""

    iteration: int
    stop: bool
    converged: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    iteration: int,
    max_iterations: int,
    metrics: dict[str, float],
    n_selected: int,
    rule: dict[str, Any],
) -> Decision:
    """Decide whether the campaign stops after ``iteration``.

    Converged when the test errors are below the configured targets (all the
    targets that are set), or when fewer than ``min_selected`` frames (or none at
    all) were selected. Otherwise it stops when ``max_iterations`` is reached.
    """
    checks = []
    for key, label, unit in (
        ("force_rmse", "test force RMSE", "eV/A"),
        ("energy_rmse", "test energy RMSE", "eV/atom"),
    ):
        target = rule.get(key)
        if target is not None:
            checks.append(
                (metrics[key] < target, f"{label} {metrics[key]:.4g} {unit} vs target {target:g}")
            )
    if checks and all(ok for ok, _ in checks):
        return Decision(iteration, True, True, "converged: " + "; ".join(t for _, t in checks))
    min_selected = rule.get("min_selected", 0)
    if n_selected == 0:
        return Decision(iteration, True, True, "converged: no frame selected in exploration")
    if min_selected and n_selected < min_selected:
        return Decision(
            iteration,
            True,
            True,
            f"converged: {n_selected} frames selected (< min_selected {min_selected})",
        )
    progress = "; ".join(t for _, t in checks) or "no error target set"
    if iteration + 1 >= max_iterations:
        return Decision(
            iteration, True, False, f"stopped: max_iterations {max_iterations} reached ({progress})"
        )
    return Decision(iteration, False, False, f"continue: {progress}; {n_selected} frames to label")
