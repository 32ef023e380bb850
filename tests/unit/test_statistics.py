"""Error statistics: bootstrap intervals, rank correlation, calibration, threshold quality."""

import math

import numpy as np
import pytest

from almomd.evaluation.statistics import (
    calibrate,
    rmse,
    rmse_interval,
    separation,
    spearman,
    spearman_interval,
)


def frames(n, rng, scale=0.1, atoms=8):
    """Per-frame squared-error sums and component counts of ``n`` random frames."""
    counts = np.full(n, 3 * atoms, dtype=float)
    sq = np.array([np.sum(rng.normal(0, scale * (1 + i % 3), int(c)) ** 2) for i, c in
                   enumerate(counts)])  # fmt: skip
    return sq, counts


def test_rmse_pools_components_of_all_frames():
    errors = [np.array([0.1, -0.2, 0.3]), np.array([0.5, 0.0, 0.0, 0.1, 0.1, 0.1])]
    sq = np.array([np.sum(e**2) for e in errors])
    counts = np.array([len(e) for e in errors])
    assert rmse(sq, counts) == pytest.approx(np.sqrt(np.mean(np.concatenate(errors) ** 2)))


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (8, 32, 128):
        sq, counts = frames(n, rng)
        low, high = rmse_interval(sq, counts, np.random.default_rng(1))
        assert low <= rmse(sq, counts) <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] > 2 * widths[2]  # about 1/sqrt(n): 4x from 8 to 128 frames


def test_bootstrap_interval_is_undefined_for_one_frame():
    low, high = rmse_interval(np.array([1.0]), np.array([3.0]), np.random.default_rng(0))
    assert math.isnan(low) and math.isnan(high)


def test_spearman_hand_values_and_interval():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1,2,3,4) vs (2,1,4,3): 1 - 6*4/(4*15) = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    rng = np.random.default_rng(5)
    x = rng.uniform(size=40)
    noisy = spearman_interval(x, x + rng.normal(0, 0.3, 40), np.random.default_rng(0))
    assert noisy.n == 40 and noisy.low <= noisy.rho <= noisy.high < 1.0
    few = spearman_interval(x[:8], x[:8] + rng.normal(0, 0.3, 8), np.random.default_rng(0))
    assert few.high - few.low > noisy.high - noisy.low  # 8 frames decide little


def test_calibration_recovers_factor_and_spread():
    rng = np.random.default_rng(2)
    u = rng.uniform(0.01, 0.2, 4000)
    error = 2.5 * u * np.exp(rng.normal(0, 0.3, u.size))
    fit = calibrate(u, error)
    assert fit.factor == pytest.approx(2.5, rel=0.03)
    assert fit.spread == pytest.approx(0.3, rel=0.05)
    target = 0.2
    threshold = fit.threshold(target, 0.8)
    assert fit.probability_above(threshold, target) == pytest.approx(0.8)
    # the threshold holds on the data: of frames near it, about 80 % exceed the target
    near = np.abs(u / threshold - 1) < 0.05
    assert np.mean(error[near] > target) == pytest.approx(0.8, abs=0.06)
    assert calibrate([0.1, 0.0], [0.2, 0.1]) is None


def test_separation_counts_precision_and_recall():
    u = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    error = np.array([0.01, 0.05, 0.02, 0.06, 0.07])
    quality = separation(u, error, threshold=0.3, target=0.04)
    # flagged: u >= 0.3 -> 3 frames, of which 2 exceed the target; bad frames: 3, 2 flagged
    assert (quality.flagged, quality.bad, quality.n) == (3, 3, 5)
    assert quality.precision == pytest.approx(2 / 3)
    assert quality.recall == pytest.approx(2 / 3)
    assert math.isnan(separation(u, error, 1.0, 0.04).precision)


def test_spearman_interval_by_trajectory_is_wider_where_frames_share_their_trajectory():
    # 4 trajectories of 10 frames: within each, u and error follow each other only through
    # the trajectory's own level, so the 40 pairs hold about 4 independent ones
    rng = np.random.default_rng(3)
    level = np.repeat(rng.normal(0, 1, 4), 10)
    u = level + rng.normal(0, 0.3, 40)
    error = level + rng.normal(0, 0.3, 40)
    groups = np.repeat(["a", "b", "c", "d"], 10)
    pairs = spearman_interval(u, error, np.random.default_rng(0))
    grouped = spearman_interval(u, error, np.random.default_rng(0), groups=groups)
    assert grouped.rho == pairs.rho
    assert grouped.low <= grouped.rho <= grouped.high
    assert grouped.high - grouped.low > 2 * (pairs.high - pairs.low)
