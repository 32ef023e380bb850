"""Intervals of observables and the verdict whether two agree.

Every observable (a number, or a curve on a fixed grid) is measured on each of
several trajectories and, within each, on ``blocks`` consecutive blocks.

- **statistical**: the standard error of the mean over trajectories from the
  blocks' scatter within each trajectory (and, for reference dynamics, the
  scatter between its independent trajectories where that is larger);
- **model**: MLIP MD runs one trajectory per ensemble member, each driven by
  that member alone, so the members' disagreement shows in their observables:
  the scatter between member trajectories beyond what their statistical noise
  explains, ``sqrt(var_between - var_within)`` where an F test (95 %) says the
  scatter exceeds the noise, else 0 (and the scatter is taken as statistical
  error): what a different member of the same ensemble would give;
- **combined**: ``sqrt(stat^2 + model^2 + stat_reference^2)``, the difference
  between the MLIP's value and the reference's expected where both are right.

Agreement (95 %): a number agrees when ``|x - x_ref| <= 2 combined``; a curve
(an RDF, a VDOS) when its mean absolute deviation from the reference is at most
the band's mean half-width, ``integral |c - c_ref| <= integral 2 combined``,
reported as the relative distance ``integral |c - c_ref| / integral c_ref``
against that tolerance. Where the members alone spread by more than
``MAX_MODEL_SPREAD`` of the reference, there is no verdict (``agree`` None,
with a note): a disagreement would still be found, an agreement would mean nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: half-width of the agreement band in combined standard errors (about 95 %)
Z = 2.0
#: members that disagree by more than this fraction of the reference (their 95 % band,
#: relative to the value; for a curve, integrated) leave the verdict open: their
#: interval holds almost anything, and agreeing with it says nothing
MAX_MODEL_SPREAD = 0.25


@dataclass(frozen=True)
class Estimate:
    """An observable's value over trajectories with its statistical and model errors (1 s.d.)."""

    value: np.ndarray
    stat: np.ndarray
    model: np.ndarray | None  # None: reference dynamics (no model)
    n: int

    @property
    def total(self) -> np.ndarray:
        model = 0.0 if self.model is None else self.model
        return np.sqrt(self.stat**2 + model**2)


def estimate(
    per_trajectory: Sequence[np.ndarray], blocks: Sequence[Sequence[np.ndarray]], model: bool
) -> Estimate:
    """The mean over trajectories of an observable, with its errors.

    ``per_trajectory``: its value on each whole trajectory; ``blocks``: on each
    trajectory's blocks. ``model``: the trajectories are driven by different
    ensemble members (else: reference dynamics, one potential).
    """
    values = np.array([np.asarray(v, float) for v in per_trajectory])
    n = len(values)
    within = np.mean(
        [
            np.var(np.array(b, float), axis=0, ddof=1) / len(b) if len(b) > 1 else np.zeros_like(v)
            for b, v in zip(blocks, values, strict=True)
        ],
        axis=0,
    )
    between = np.var(values, axis=0, ddof=1) if n > 1 else np.zeros_like(values[0])
    mean = values.mean(axis=0)
    noise = np.sqrt(np.maximum(within, between) / n)  # the mean of n independent runs
    if not model or n < 2:
        return Estimate(mean, noise, None if not model else np.zeros_like(mean), n)
    # the members differ where their scatter exceeds what their noise explains, at 95 %
    # (an F test of the two variances); elsewhere the scatter is noise
    from scipy.stats import f

    dof = sum(len(b) - 1 for b in blocks)
    real = between > within * f.ppf(0.95, n - 1, max(dof, 1))
    spread = np.where(real, np.sqrt(np.maximum(0.0, between - within)), 0.0)
    return Estimate(mean, np.where(real, np.sqrt(within / n), noise), spread, n)


def _number(x: np.ndarray) -> float | None:
    value = float(x)
    return None if math.isnan(value) else value


def compare_number(found: Estimate, reference: Estimate | None) -> dict:
    """A number's value, errors and (with a reference) its verdict."""
    row = {
        "value": _number(found.value),
        "stat": _number(found.stat),
        "model": None if found.model is None else _number(found.model),
        "n": found.n,
    }
    if reference is None:
        return row | {"agree": None}
    combined = float(np.sqrt(found.total**2 + reference.stat**2))
    deviation = float(found.value - reference.value)
    ratio = float(found.value / reference.value) if float(reference.value) else math.nan
    agree: bool | None = bool(abs(deviation) <= Z * combined) if math.isfinite(deviation) else False
    spread = 0.0 if found.model is None else Z * float(found.model)
    open_verdict = agree and spread > MAX_MODEL_SPREAD * abs(float(reference.value))
    if open_verdict:
        agree = None
        row["note"] = "the members disagree too much for a verdict"
    return row | {
        "reference": _number(reference.value),
        "reference_stat": _number(reference.stat),
        "deviation": deviation,
        "combined": combined,
        "ratio": _number(np.array(ratio)),
        "agree": agree,
    }


def compare_curve(grid: np.ndarray, found: Estimate, reference: Estimate | None) -> dict:
    """A curve's distance from the reference (relative L1) against its tolerance."""
    row: dict = {"n": found.n}
    if reference is None:
        return row | {"agree": None}
    # relative to the reference's area (the MLIP's where the reference has none: an RDF
    # peak the reference never reaches within the range)
    scale = float(np.trapezoid(np.abs(reference.value), grid)) or float(
        np.trapezoid(np.abs(found.value), grid)
    )
    combined = np.sqrt(found.total**2 + reference.stat**2)
    distance = float(np.trapezoid(np.abs(found.value - reference.value), grid)) / scale
    tolerance = float(np.trapezoid(Z * combined, grid)) / scale
    agree: bool | None = distance <= tolerance
    spread = 0.0 if found.model is None else float(np.trapezoid(Z * found.model, grid)) / scale
    if agree and spread > MAX_MODEL_SPREAD:
        agree = None
        row["note"] = "the members disagree too much for a verdict"
    return row | {"distance": distance, "tolerance": tolerance, "agree": agree}
