"""Which frames are uncertain enough to label: ALmoMD's soft acceptance, windows and thresholds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from almomd.evaluation.statistics import Calibration


def acceptance_probability(
    u: np.ndarray | float, mean: float, std: float, shift: float, gradient: float
) -> np.ndarray:
    """ALmoMD's soft acceptance probability of uncertainties ``u``."""
    std = max(float(std), 1e-12)
    z = (np.asarray(u, dtype=float) - mean - shift * std) / (gradient * std * math.sqrt(2))
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(z))


def in_window(u: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Boolean mask of ``low <= u < high`` (a missing bound is open)."""
    u = np.asarray(u, dtype=float)
    mask = np.ones(u.shape, dtype=bool)
    if low is not None:
        mask &= u >= low
    if high is not None:
        mask &= u < high
    return mask


#: Calibration values a system needs for thresholds of its own (else the pooled ones apply).
MIN_OWN_CALIBRATION = 2


@dataclass(frozen=True)
class Thresholds:
    """The acceptance thresholds of one system's frames, and where they come from."""

    mean: float
    std: float
    calibrated: Calibration | None
    scope: str  # "system" (its own frames) or "pooled" (all systems' frames)


def thresholds_by_system(
    names: Sequence[str],
    calibration: Sequence[float],
    calibrated: Calibration | None,
    by_system: Mapping[str, Sequence[float]] | None = None,
    calibrated_by_system: Mapping[str, Calibration | None] | None = None,
) -> dict[str, Thresholds]:
    """Each system's calibration: from its own frames where it has enough, else pooled.

    A threshold calibrated on one system's frames must not decide another's:
    with ``by_system`` (and ``calibrated_by_system``) every system with at least
    :data:`MIN_OWN_CALIBRATION` values (a fitted calibration) is judged by its own.
    """
    pooled = np.asarray(calibration, dtype=float)
    found = {}
    for name in names:
        own = np.asarray((by_system or {}).get(name, []), dtype=float)
        values, scope = (own, "system") if own.size >= MIN_OWN_CALIBRATION else (pooled, "pooled")
        fit = (calibrated_by_system or {}).get(name)
        if fit is None:
            fit = calibrated
        found[name] = Thresholds(
            float(values.mean()) if values.size else 0.0,
            float(values.std()) if values.size else 0.0,
            fit,
            scope if by_system is not None else "campaign",
        )
    return found
