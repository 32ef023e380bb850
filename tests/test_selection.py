"""The selection rule: erf acceptance, hard window, cap, screening, diversity."""

import numpy as np
import pytest
from ase.build import bulk

from almomd.selection import (
    SelectionRule,
    acceptance_probability,
    diverse_subset,
    frame_distance,
    in_window,
    select,
)


def test_acceptance_is_half_at_mean_plus_shift_std_and_monotone():
    mean, std, shift = 0.3, 0.1, 2.0
    assert acceptance_probability(mean + shift * std, mean, std, shift, 1.0) == pytest.approx(0.5)
    u = np.linspace(0.0, 1.0, 101)
    p = acceptance_probability(u, mean, std, shift, 1.0)
    assert np.all(np.diff(p) >= 0)
    assert p[0] < 1e-6 and p[-1] > 1 - 1e-6
    # one gradient*std above the midpoint: Phi(1) = 0.8413
    assert acceptance_probability(0.6, mean, std, shift, 1.0) == pytest.approx(0.841345, rel=1e-5)
    # a larger gradient makes the step softer
    assert acceptance_probability(0.6, mean, std, shift, 3.0) < 0.8413


def test_window_bounds():
    u = np.array([0.1, 0.2, 0.3, 0.4])
    assert in_window(u, 0.2, 0.4).tolist() == [False, True, True, False]
    assert in_window(u, None, None).all()
    assert in_window(u, None, 0.3).tolist() == [True, True, False, False]


def frames_along_path(n, step=0.1, close_pair=None):
    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    frames = []
    for i in range(n):
        atoms = base.copy()
        atoms.positions[0, 0] += step * i
        atoms.info.update(al_id=f"f{i}", al_walker=0, al_step=i)
        frames.append(atoms)
    if close_pair is not None:
        frames[close_pair].positions[1] = frames[close_pair].positions[0] + [0.5, 0, 0]
    return frames


def test_frame_distance_is_rms_displacement_with_minimum_image():
    frames = frames_along_path(2, step=0.4)
    assert frame_distance(frames[0], frames[1]) == pytest.approx(np.sqrt(0.4**2 / 32))
    shifted = frames[0].copy()
    shifted.positions[0, 0] += shifted.cell[0, 0]  # a full cell vector: the same structure
    assert frame_distance(frames[0], shifted) == pytest.approx(0.0, abs=1e-9)
    assert frame_distance(frames[0], bulk("Cu")) == np.inf


def test_diversity_drops_near_duplicates_in_order():
    frames = frames_along_path(4, step=0.01)
    kept, similar = diverse_subset(frames, [3, 2, 1, 0], threshold=0.003, cap=10)
    # consecutive frames are 0.01/sqrt(32) = 0.0018 apart: every other frame stays
    assert kept == [3, 1]
    assert similar == [2, 0]
    kept, _ = diverse_subset(frames, [0, 1, 2, 3], threshold=0.0, cap=2)
    assert kept == [0, 1]


def rule(**changes):
    base = dict(shift=0.0, gradient=1.0, max_frames=10, min_distance=1.0, min_frame_distance=0.0)
    return SelectionRule(**(base | changes))


def test_select_takes_the_most_uncertain_screens_and_caps():
    frames = frames_along_path(6, close_pair=5)
    u = [0.0, 0.0, 0.0, 10.0, 20.0, 30.0]
    table = select(
        frames, u, calibration=[0.0, 1.0], rule=rule(max_frames=1), rng=np.random.default_rng(0)
    )
    decisions = dict(zip(table["al_id"], table["decision"], strict=True))
    assert decisions["f5"] == "too_close"  # most uncertain but unphysical
    assert decisions["f4"] == "selected"
    assert decisions["f3"] == "over_cap"
    assert table["selected"].sum() == 1
    assert {decisions[f"f{i}"] for i in range(3)} <= {"not_accepted", "over_cap", "selected"}


def test_select_window_and_similarity():
    frames = frames_along_path(4, step=0.001)
    u = [5.0, 6.0, 7.0, 100.0]
    table = select(
        frames,
        u,
        [0.0, 1.0],
        rule(window_high=50.0, min_frame_distance=0.01),
        np.random.default_rng(1),
    )
    decisions = table["decision"].tolist()
    assert decisions[3] == "outside_window"
    assert decisions[2] == "selected"
    assert decisions[:2] == ["too_similar", "too_similar"]


def test_acceptance_draw_matches_probability():
    frames = frames_along_path(400, step=0.0)
    u = np.linspace(0, 1, 400)
    table = select(frames, u, [0.4, 0.6], rule(max_frames=400), np.random.default_rng(3))
    accepted = table["decision"].isin(["selected", "over_cap", "too_similar"])
    assert (accepted == (table["draw"] < table["probability"])).all()
    # expected number accepted equals the sum of probabilities (binomial spread)
    assert abs(accepted.sum() - table["probability"].sum()) < 4 * np.sqrt(400 * 0.25)


def test_random_baseline_draws_the_budget_uniformly():
    frames = frames_along_path(20, close_pair=0)
    table = select(
        frames, np.zeros(20), [0.0], rule(method="random", max_frames=5), np.random.default_rng(2)
    )
    assert table["selected"].sum() == 5
    assert table.loc[0, "decision"] == "too_close"
    assert set(table["decision"]) == {"too_close", "selected", "not_drawn"}
