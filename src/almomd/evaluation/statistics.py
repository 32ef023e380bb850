"""Error statistics with their uncertainty: bootstrap intervals, rank correlation,
uncertainty calibration and how well a threshold separates bad frames.

Every error is computed from per-frame sums, and intervals resample *frames*
(not force components: the components of one frame are correlated), so that an
interval says what another set of frames from the same conditions would give.
Frames of one MD trajectory are correlated too, and one trajectory may sit
apart from another at the same conditions: where the frames carry their
trajectory (``groups``), the interval resamples trajectories within each
condition (``strata``) and then frames within each trajectory drawn, so that it
says what a new trajectory would give; :func:`effective_n` says how many
independent frames the set is worth.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri, stdtrit

#: Bootstrap resamples of an interval.
N_BOOTSTRAP = 2000
#: Default confidence level of intervals.
LEVEL = 0.95


def rmse(sq_sums: np.ndarray, counts: np.ndarray) -> float:
    """RMSE of frames with squared-error sums ``sq_sums`` over ``counts`` values each."""
    total = float(np.sum(counts))
    return math.sqrt(float(np.sum(sq_sums)) / total) if total else math.nan


def _labels(values, n: int) -> np.ndarray:
    """Group labels as an array; ``None`` gives every frame its own group."""
    if values is None:
        return np.arange(n)
    return pd.factorize(pd.Series(list(values), dtype=object).fillna("-"))[0]


def resample(
    n: int, rng: np.random.Generator, n_resamples: int, groups=None, strata=None
) -> list[np.ndarray]:
    """Bootstrap draws of frame indices, one array per resample.

    ``groups``: a trajectory or walker per frame (``None``: every frame its
    own). Within each stratum its groups are drawn with replacement, then
    frames within each group drawn (a stratum of one group, or of single
    frames, falls back to drawing its frames).
    """
    groups = _labels(groups, n)
    strata = _labels(strata, n) if strata is not None else np.zeros(n, dtype=int)
    units = []  # per stratum: its groups' frame indices
    for stratum in np.unique(strata):
        inside = strata == stratum
        members = [np.flatnonzero(inside & (groups == g)) for g in np.unique(groups[inside])]
        if len(members) == 1 or all(len(m) == 1 for m in members):
            members = [np.concatenate(members)]
            units.append((members, False))
        else:
            units.append((members, True))
    draws = []
    for _ in range(n_resamples):
        parts = []
        for members, by_group in units:
            chosen = rng.integers(0, len(members), len(members)) if by_group else [0]
            parts.extend(members[g][rng.integers(0, len(members[g]), len(members[g]))]
                         for g in chosen)  # fmt: skip
        draws.append(np.concatenate(parts))
    return draws


def effective_n(values: np.ndarray, groups=None, strata=None) -> float:
    """How many independent frames the per-frame ``values`` (in order) are worth.

    Within each stratum: with several groups, ``n / (1 + (m - 1) ICC)`` for the
    intraclass correlation ICC of the values (one-way ANOVA, clipped at 0) and
    ``m`` frames per group on average; with one group, ``n / (1 + 2 sum_k rho_k)``
    for the autocorrelations ``rho_k`` of the sequence, summed while positive.
    Summed over strata; without groups every frame counts once.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if groups is None or n < 3:
        return float(n)
    groups = _labels(groups, n)
    strata = _labels(strata, n) if strata is not None else np.zeros(n, dtype=int)
    total = 0.0
    for stratum in np.unique(strata):
        inside = strata == stratum
        x, g = values[inside], groups[inside]
        labels = np.unique(g)
        if len(labels) > 1:
            sizes = np.array([np.sum(g == label) for label in labels], dtype=float)
            means = np.array([x[g == label].mean() for label in labels])
            k, size = len(labels), len(x)
            within = sum(
                ((x[g == label] - m) ** 2).sum() for label, m in zip(labels, means, strict=True)
            )
            ms_within = within / max(size - k, 1)
            ms_between = (sizes * (means - x.mean()) ** 2).sum() / (k - 1)
            n0 = (size - (sizes**2).sum() / size) / (k - 1)
            var_between = max(0.0, (ms_between - ms_within) / n0) if n0 > 0 else 0.0
            icc = var_between / (var_between + ms_within) if var_between + ms_within > 0 else 0.0
            total += size / (1.0 + (size / k - 1.0) * icc)
        else:
            total += len(x) / _autocorrelation_factor(x)
    return float(total)


def _autocorrelation_factor(x: np.ndarray) -> float:
    """``1 + 2 sum_k rho_k`` over the leading positive autocorrelations of ``x`` (at least 1)."""
    x = np.asarray(x, dtype=float) - np.mean(x)
    variance = float(np.mean(x**2))
    if len(x) < 3 or variance <= 0:
        return 1.0
    factor = 1.0
    for lag in range(1, len(x) // 2 + 1):
        rho = float(np.mean(x[:-lag] * x[lag:])) / variance
        if rho <= 0:
            break
        factor += 2.0 * rho
    return min(factor, float(len(x)))


def autocorrelation_time(series: np.ndarray, window: float = 5.0) -> float:
    """Integrated autocorrelation time of ``series`` in steps (Sokal's automatic window).

    ``tau = 1/2 + sum_{k=1}^{W} rho_k`` with the smallest window ``W >= window * tau``;
    0.5 for an uncorrelated series. Two frames ``2 tau`` apart are close to independent.
    """
    x = np.asarray(series, dtype=float)
    x = x - x.mean()
    n = len(x)
    if n < 4 or not np.any(x):
        return 0.5
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    acf /= acf[0]
    tau = 0.5
    for lag in range(1, n):
        tau += acf[lag]
        if lag >= window * tau:
            break
    return float(max(tau, 0.5))


def expanded_tail(n: float, level: float = LEVEL) -> float:
    """The tail probability of each end of an expanded percentile interval for ``n`` values.

    ``Phi(-sqrt(n / (n - 1)) t_{n-1})`` with ``t_{n-1}`` the Student t quantile of
    ``level``: for 8 frames 0.57 % instead of 2.5 %, for 100 frames 2.3 %.
    """
    n = max(float(n), 2.0)
    t = float(stdtrit(n - 1.0, 0.5 + level / 2))
    return float(ndtr(-math.sqrt(n / (n - 1.0)) * t))


def rmse_interval(
    sq_sums: np.ndarray,
    counts: np.ndarray,
    rng: np.random.Generator,
    level: float = LEVEL,
    n_resamples: int = N_BOOTSTRAP,
    groups=None,
    strata=None,
) -> tuple[float, float]:
    """Expanded percentile bootstrap interval of :func:`rmse`, resampling frames.

    ``sq_sums[i]`` is frame ``i``'s sum of squared errors over its ``counts[i]``
    values (3 x atoms for forces, 1 for a per-atom energy). With ``groups`` (and
    ``strata``) it resamples groups, then frames (:func:`resample`). A plain
    percentile interval is too narrow for the few frames of a held-out set (it
    ignores that the spread itself is estimated); the percentiles are widened
    as a Student t interval would be for the set's effective n (Hesterberg's
    expanded percentile interval, :func:`expanded_tail`). Returns ``(nan, nan)``
    for fewer than two frames.
    """
    sq_sums, counts = np.asarray(sq_sums, dtype=float), np.asarray(counts, dtype=float)
    n = len(sq_sums)
    if n < 2:
        return math.nan, math.nan
    if groups is None:  # frames are the units: one draw of them all at once
        picks = rng.integers(0, n, size=(n_resamples, n))
        values = np.sqrt(sq_sums[picks].sum(axis=1) / counts[picks].sum(axis=1))
    else:
        draws = resample(n, rng, n_resamples, groups, strata)
        values = np.array([math.sqrt(sq_sums[d].sum() / counts[d].sum()) for d in draws])
    units = n if groups is None else effective_n(sq_sums / np.maximum(counts, 1), groups, strata)
    tail = expanded_tail(units, level) * 100
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
    groups=None,
    strata=None,
) -> Correlation:
    """Spearman's rho of ``x`` and ``y`` with a percentile bootstrap interval over pairs.

    With ``groups`` (and ``strata``) the pairs are drawn as :func:`resample`
    draws frames: trajectories (walkers) first, then frames within them.
    """
    from scipy.stats import rankdata  # scipy.stats takes seconds to import: only here

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    rho = spearman(x, y)
    if n < 4 or math.isnan(rho):
        return Correlation(rho, math.nan, math.nan, n)
    if groups is None:  # pairs are the units: one draw of them all at once
        picks = rng.integers(0, n, size=(n_resamples, n))
        rx = rankdata(x[picks], axis=1)
        ry = rankdata(y[picks], axis=1)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
        valid = denominator > 0
        values = (rx * ry).sum(axis=1)[valid] / denominator[valid]
    else:
        draws = resample(n, rng, n_resamples, groups, strata)
        values = np.array([spearman(x[d], y[d]) for d in draws])
        values = values[~np.isnan(values)]
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
