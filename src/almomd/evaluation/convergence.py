"""The per-iteration decision: stop (converged or out of iterations) or go on.

Converged means, for the figures that are configured:

- **error**: the held-out errors are below their targets with confidence: the
  upper end of the bootstrap interval of the held-out force RMSE (and energy
  RMSE) lies below ``force_rmse`` (``energy_rmse``); with several systems,
  on all frames and on each system's frames alone;
- **uncertainty**: the fraction of explored frames flagged as uncertain (above
  the calibrated threshold, else the acceptance threshold) stayed at or below
  ``uncertain_fraction`` for ``stable_iterations`` consecutive iterations
  (ALmoMD stops after three consecutive iterations meet its criterion).

- **observables** (``observables``): MLIP MD's observables named there agree
  with the reference dynamics (within their combined interval) at every
  condition (:mod:`almomd.observables`).

All that are set must hold. An observable that disagrees (or MD that is not
stable) is named in the reason even where the verdict does not wait for it:
a campaign that converged on forces says that its dynamics are off. A campaign
also stops as converged when
exploration selects no frame (or fewer than ``min_selected``). A verdict on
frames that do not cover the exploration conditions (the test set) says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from almomd.settings.history import flatten
from almomd.settings.sections import Convergence


@dataclass(frozen=True)
class Figure:
    """One figure that took part in the verdict."""

    name: str
    value: float
    target: float
    ok: bool
    text: str
    interval: tuple[float, float] | None = None
    n: int | None = None


@dataclass(frozen=True)
class Decision:
    """Outcome of one iteration's convergence check."""

    iteration: int
    stop: bool
    converged: bool
    reason: str
    decided_by: list[Figure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _error_figures(heldout: dict[str, Any], rule: Convergence) -> list[Figure]:
    """The error figures of all held-out frames and, with several systems, of each system."""
    where = heldout["source"] + (
        "" if heldout["covers_conditions"] else ", not the exploration conditions"
    )
    figures = _figures_of(heldout, rule, where, heldout["level"])
    per_system = heldout.get("per_system", {})
    if len(per_system) > 1:
        for name, summary in per_system.items():
            figures += _figures_of(summary, rule, where, heldout["level"], name)
    return figures


def _figures_of(
    summary: dict[str, Any], rule: Convergence, where: str, level: float, system: str = ""
) -> list[Figure]:
    figures = []
    for key, label, unit in (
        ("force_rmse", "held-out force RMSE", "eV/A"),
        ("energy_rmse", "held-out energy RMSE", "eV/atom"),
    ):
        target = getattr(rule, key)
        if target is None:
            continue
        value = summary[key]
        low, high = (math.nan if v is None else v for v in summary[f"{key}_ci"])
        ok = high < target  # False for a missing interval (nan)
        name = f"{key}[{system}]" if system else key
        text = (
            f"{system + ' ' if system else ''}{label} {value:.4g} {unit} "
            f"({level:.0%} CI {low:.4g}-{high:.4g}, n={summary['n_frames']} frames, {where}) "
            f"vs target {target:g}"
        )
        figures.append(Figure(name, value, target, ok, text, (low, high), summary["n_frames"]))
    return figures


def _uncertainty_figure(fractions: Sequence[float], rule: Convergence) -> Figure | None:
    limit = rule.uncertain_fraction
    if limit is None:
        return None
    needed = rule.stable_iterations
    streak = 0
    for fraction in reversed(fractions):
        if math.isnan(fraction) or fraction > limit:
            break
        streak += 1
    current = fractions[-1] if fractions else math.nan
    text = (
        f"uncertain fraction of explored frames {current:.3g} (limit {limit:g}); "
        f"met {streak} of {needed} consecutive iterations"
    )
    return Figure("uncertain_fraction", current, limit, streak >= needed, text)


def _observable_figures(
    observed: Sequence[dict[str, Any]], rule: Convergence
) -> tuple[list[Figure], list[str]]:
    """The figures of ``convergence.observables`` and what disagrees, per condition."""
    figures, disagree = [], []
    for found in observed:
        where = found["condition"]
        for name in rule.observables:
            if name not in found["observables"]:  # nothing to compare (e.g. no RDF shell)
                text = f"{name} at {where} not measured"
                figures.append(Figure(f"{name}[{where}]", 0.0, 1.0, False, text))
        for name, row in found["observables"].items():
            if name.startswith("_"):
                continue
            agree = row.get("agree")
            if agree is False:
                disagree.append(f"{name} at {where}")
            if name in rule.observables:
                text = f"{name} at {where} " + {True: "agrees", False: "disagrees",
                                                None: "has no verdict"}[agree]  # fmt: skip
                figures.append(Figure(f"{name}[{where}]", float(bool(agree)), 1.0,
                                      agree is True, text))  # fmt: skip
    if rule.observables and not observed:
        figures.append(Figure("observables", 0.0, 1.0, False, "no observables measured"))
    return figures, disagree


def decide(
    iteration: int,
    max_iterations: int,
    heldout: dict[str, Any],
    uncertain_fractions: Sequence[float],
    n_selected: int,
    rule: Convergence,
    observed: Sequence[dict[str, Any]] = (),
) -> Decision:
    """Decide whether the campaign stops after ``iteration``.

    ``heldout`` is the iteration's held-out summary (``source``,
    ``covers_conditions``, ``n_frames``, ``level``, ``force_rmse`` and
    ``energy_rmse`` with their ``_ci``); ``uncertain_fractions`` the fraction
    of uncertain explored frames of iterations ``0 .. iteration``; ``observed``
    the iteration's observables per condition.
    """
    figures = _error_figures(heldout, rule)
    uncertainty = _uncertainty_figure(uncertain_fractions, rule)
    if uncertainty is not None:
        figures.append(uncertainty)
    dynamics, disagree = _observable_figures(observed, rule)
    figures += dynamics
    texts = "; ".join(f.text for f in figures)
    if disagree:
        texts += (
            "; MD off (observables that disagree with the reference dynamics, or unstable): "
            + ", ".join(disagree)
        )
    caveat = ""
    if not heldout["covers_conditions"]:
        caveat = (
            f" (judged on the {heldout['source'].replace('_', ' ')}, which does not represent the "
            "exploration conditions: set heldout.source to reference_md, audit or file)"
        )
    if figures and all(f.ok for f in figures):
        return Decision(iteration, True, True, f"converged: {texts}{caveat}", figures)
    min_selected = rule.min_selected
    if n_selected == 0:
        return Decision(
            iteration, True, True, "converged: no frame selected in exploration" + caveat, figures
        )
    if min_selected and n_selected < min_selected:
        reason = f"converged: {n_selected} frames selected (< min_selected {min_selected})"
        return Decision(iteration, True, True, reason + caveat, figures)
    progress = texts or "no convergence criterion set"
    if iteration + 1 >= max_iterations:
        reason = f"stopped: max_iterations {max_iterations} reached ({progress})"
        return Decision(iteration, True, False, reason, figures)
    return Decision(
        iteration, False, False, f"continue: {progress}; {n_selected} frames to label", figures
    )


#: the settings that decide when a campaign stops; changing one re-decides its last iteration
STOP_RULES = ("max_iterations", "convergence")


def stop_rules(config: dict[str, Any]) -> dict[str, Any]:
    """The stop rules of a (validated) campaign configuration."""
    return {key: config.get(key) for key in STOP_RULES}


def changed_stop_rules(decided_with: dict[str, Any] | None, config: dict[str, Any]) -> list[str]:
    """The stop rules that differ between a decision's settings and ``config`` now.

    Each change reads ``key: <then> -> <now>``; a decision without recorded
    settings (an older campaign) is taken as made under the current rules.
    """
    if not decided_with:
        return []
    then, now = flatten(stop_rules(decided_with)), flatten(stop_rules(config))
    return [
        f"{key}: {then.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(set(then) | set(now))
        if then.get(key) != now.get(key)
    ]


def redecided(decision: dict[str, Any], next_begun: bool, config: dict[str, Any]) -> list[str]:
    """Why the iteration of ``decision`` is decided again under ``config``'s stop rules, or [].

    The last decided iteration (``next_begun``: the next iteration has begun) is
    decided again when the stop rules it was decided under changed: raising
    ``max_iterations`` or tightening a target goes on from there, loosening one
    stops there. Earlier decisions are history and stay as they were made.
    """
    if next_begun:
        return []
    return changed_stop_rules(decision.get("settings"), config)
