"""Error statistics with their uncertainty: bootstrap intervals, rank correlation,
uncertainty calibration and how well a threshold separates bad frames.

Every error is computed from per-frame sums, and intervals resample *frames*
(not force components: the components of one frame are correlated), so that an
interval says what another set of frames from the same conditions would give.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

#: Bootstrap resamples of an interval.
N_BOOTSTRAP = 2000
#: Default confidence level of intervals.
LEVEL = 0.95


def rmse(sq_sums: np.ndarray, counts: np.ndarray) -> float:
    """RMSE of frames with squared-error sums ``sq_sums`` over ``counts`` values each."""
    total = float(np.sum(counts))
    return math.sqrt(float(np.sum(sq_sums)) / total) if total else math.nan


def rmse_interval(
    sq_sums: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    level: float = LEVEL,
    n_resamples: int = N_BOOTSTRAP,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`rmse`, resampling frames.

    ``sq_sums[i]`` is frame ``i``'s sum of squared errors over its ``counts[i]``
    values (3 x atoms for forces, 1 for a per-atom energy). Returns ``(nan, nan)``
    for fewer than two frames.
    """
    sq_sums, counts = np.asarray(sq_sums, dtype=float), np.asarray(counts, dtype=float)
    n = len(sq_sums)
    if n < 2:
        return math.nan, math.nan
    picks = rng.integers(0, n, size=(n_resamples, n))
    values = np.sqrt(sq_sums[picks].sum(axis=1) / counts[picks].sum(axis=1))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's of the ranks, ties averaged); nan if undefined."""
    x, y = pd.Series(np.asarray(x, dtype=float)), pd.Series(np.asarray(y, dtype=float))
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(x.rank().corr(y.rank()))


@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its bootstrap interval and the number of frames."""

    rho: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def spearman_interval(
    x: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    level: float = LEVEL,
    n_resamples: int = N_BOOTSTRAP // 2,
) -> Correlation:
    """Spearman's rho of ``x`` and ``y`` with a percentile bootstrap interval over pairs."""
    from scipy.stats import rankdata  # scipy.stats takes seconds to import: only here

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    rho = spearman(x, y)
    if n < 4 or math.isnan(rho):
        return Correlation(rho, math.nan, math.nan, n)
    picks = rng.integers(0, n, size=(n_resamples, n))
    rx = rankdata(x[picks], axis=1)
    ry = rankdata(y[picks], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    valid = denominator > 0
    values = (rx * ry).sum(axis=1)[valid] / denominator[valid]
    if values.size < n_resamples // 2:
        return Correlation(rho, math.nan, math.nan, n)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Correlation(rho, float(low), float(high), n)


@dataclass(frozen=True)
class Calibration:
    """How a frame's true error relates to its ensemble uncertainty.

    The model is ``log(error) = log(factor * u) + e`` with ``e ~ N(0, spread**2)``:
    the ensemble's spread times a calibration ``factor`` predicts the error, and
    ``spread`` says how far a single frame scatters around that prediction (in
    natural-log units). Fitted on ``n`` held-out frames.
    """

    factor: float
    spread: float
    n: int

    def probability_above(self, u: np.ndarray | float, target: float) -> np.ndarray:
        """Probability that a frame of uncertainty ``u`` has an error above ``target``."""
        u = np.maximum(np.asarray(u, dtype=float), 1e-300)
        z = (np.log(self.factor * u) - math.log(target)) / max(self.spread, 1e-6)
        return ndtr(z)

    def threshold(self, target: float, probability: float) -> float:
        """The uncertainty above which the error exceeds ``target`` with ``probability``."""
        return float(target / self.factor * math.exp(self.spread * ndtri(probability)))

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def calibrate(u: np.ndarray, error: np.ndarray) -> Calibration | None:
    """Fit :class:`Calibration` to frames of uncertainty ``u`` and true ``error``.

    Frames with a zero uncertainty or error carry no scale and are ignored;
    returns None when fewer than 3 frames remain.
    """
    u, error = np.asarray(u, dtype=float), np.asarray(error, dtype=float)
    keep = (u > 0) & (error > 0) & np.isfinite(u) & np.isfinite(error)
    if keep.sum() < 3:
        return None
    log_ratio = np.log(error[keep]) - np.log(u[keep])
    return Calibration(
        float(math.exp(log_ratio.mean())), float(log_ratio.std(ddof=1)), int(keep.sum())
    )


@dataclass(frozen=True)
class Separation:
    """How well ``u >= threshold`` flags the frames whose true error exceeds the target."""

    threshold: float
    flagged: int
    bad: int
    n: int
    precision: float
    recall: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def separation(u: np.ndarray, error: np.ndarray, threshold: float, target: float) -> Separation:
    """Precision and recall of flagging ``u >= threshold`` against ``error > target``.

    Precision: of the flagged frames, the fraction truly above the target (nan if
    none is flagged). Recall: of the frames truly above the target, the fraction
    flagged (nan if there is none).
    """
    u, error = np.asarray(u, dtype=float), np.asarray(error, dtype=float)
    flagged = u >= threshold
    bad = error > target
    hits = int((flagged & bad).sum())
    precision = hits / flagged.sum() if flagged.any() else math.nan
    recall = hits / bad.sum() if bad.any() else math.nan
    return Separation(
        float(threshold),
        int(flagged.sum()),
        int(bad.sum()),
        len(u),
        float(precision),
        float(recall),
    )
