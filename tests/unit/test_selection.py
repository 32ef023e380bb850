"""The selection rule: erf and calibrated acceptance, window, cap, screening, spreading, audit."""

import numpy as np
import pytest
from ase.build import bulk

from almomd.evaluation.statistics import Calibration
from almomd.selection.acceptance import acceptance_probability, in_window
from almomd.selection.diversity import frame_distance
from almomd.selection.select import select, uncertain_fraction
from almomd.settings.sections import Selection


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
        atoms.info.update(al_id=f"f{i}", al_walker=0, al_step=i, md_time_fs=2.0 * i)
        frames.append(atoms)
    if close_pair is not None:
        frames[close_pair].positions[1] = frames[close_pair].positions[0] + [0.5, 0, 0]
    return frames


def test_frame_distance_is_rms_displacement_with_minimum_image():
    frames = frames_along_path(2, step=0.4)
    # one atom moved by 0.4 along x; the mean displacement (0.4/32) is removed as drift
    d = np.zeros(32)
    d[0] = 0.4
    d -= d.mean()
    assert frame_distance(frames[0], frames[1]) == pytest.approx(np.sqrt(np.mean(d**2)))
    drifted = frames[0].copy()
    drifted.positions += [0.3, -0.1, 0.2]
    assert frame_distance(frames[0], drifted) == pytest.approx(0.0, abs=1e-9)
    shifted = frames[0].copy()
    shifted.positions[0, 0] += shifted.cell[0, 0]  # a full cell vector: the same structure
    assert frame_distance(frames[0], shifted) == pytest.approx(0.0, abs=1e-9)
    assert frame_distance(frames[0], bulk("Cu")) == np.inf


def rule(**changes):
    base = dict(shift=0.0, gradient=1.0, max_frames=10, min_distance=1.0, min_frame_distance=0.0,
                min_time_separation=0.0, fair_share=False)  # fmt: skip
    return Selection(**(base | changes))


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


def trajectories(n_walkers, n_frames, log_fs=20.0):
    """Logged frames of ``n_walkers`` walkers (one atom moves 0.05 A per frame)."""
    base = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    frames = []
    for w in range(n_walkers):
        for i in range(n_frames):
            atoms = base.copy()
            atoms.positions[w % 32, 1] += 0.05 * i
            atoms.positions[(w + 5) % 32, 2] += 0.1 * w
            atoms.info.update(al_id=f"w{w}-{i}", al_walker=w, al_step=10 * i,
                              md_time_fs=log_fs * i)  # fmt: skip
            frames.append(atoms)
    return frames


def test_selection_keeps_walker_frames_apart_in_time():
    """Walker 0 is most uncertain at consecutive frames; 100 fs keeps its picks 5 frames apart."""
    frames = trajectories(1, 30)
    u = np.concatenate([np.linspace(1, 2, 15), np.linspace(2, 1, 15)])  # peak at frames 14/15
    table = select(frames, u, [0.0, 0.001], rule(max_frames=4, min_time_separation=100.0),
                   np.random.default_rng(0))  # fmt: skip
    chosen = table.loc[table["selected"], "time_fs"].sort_values().to_numpy()
    assert len(chosen) == 4
    assert np.diff(chosen).min() >= 100.0
    assert (table["decision"] == "too_correlated").sum() > 0
    unconstrained = select(frames, u, [0.0, 0.001], rule(max_frames=4), np.random.default_rng(0))
    assert (
        np.diff(unconstrained.loc[unconstrained["selected"], "time_fs"].sort_values()).min() < 100
    )


def test_fair_share_spreads_the_budget_over_walkers():
    """Walker 0 is far more uncertain everywhere; with fair share each walker still gets a turn."""
    frames = trajectories(3, 12)
    u = np.array([10.0 + i if a.info["al_walker"] == 0 else 1.0 + 0.01 * i
                  for i, a in enumerate(frames)])  # fmt: skip
    greedy = select(frames, u, [0.0, 0.001], rule(max_frames=6), np.random.default_rng(0))
    assert set(greedy.loc[greedy["selected"], "walker"]) == {0}
    fair = select(frames, u, [0.0, 0.001], rule(max_frames=6, fair_share=True),
                  np.random.default_rng(0))  # fmt: skip
    counts = fair.loc[fair["selected"], "walker"].value_counts().to_dict()
    assert counts == {0: 2, 1: 2, 2: 2}
    # within each walker, the most uncertain frames are taken
    for _, group in fair.groupby("walker"):
        assert (
            group.loc[group["selected"], "uncertainty"].min()
            >= group["uncertainty"].nlargest(2).min()
        )


def test_fair_share_leaves_unused_turns_to_the_others():
    frames = trajectories(2, 10)
    u = np.array([5.0 if a.info["al_walker"] == 0 else 0.0 for a in frames])
    table = select(frames, u, [1.0, 1.2], rule(max_frames=4, fair_share=True, shift=2.0,
                   gradient=0.01), np.random.default_rng(0))  # fmt: skip
    assert table.loc[table["selected"], "walker"].tolist() == [0, 0, 0, 0]  # walker 1 not accepted


def test_audit_frames_are_drawn_per_walker_and_not_selected():
    frames = trajectories(3, 10)
    u = np.linspace(0, 1, len(frames))
    table = select(frames, u, [0.0, 0.001], rule(max_frames=3), np.random.default_rng(4),
                   audit_per_walker=2)  # fmt: skip
    audit = table[table["decision"] == "audit"]
    assert audit["walker"].value_counts().to_dict() == {0: 2, 1: 2, 2: 2}
    assert (audit["step"] > 0).all()
    assert not (audit["selected"]).any()
    assert table["selected"].sum() == 3
    # uniform, not by uncertainty: over many draws every frame after step 0 is picked
    seen = set()
    for seed in range(60):
        t = select(frames, u, [0.0, 0.001], rule(max_frames=1), np.random.default_rng(seed),
                   audit_per_walker=1)  # fmt: skip
        seen |= set(t.loc[t["decision"] == "audit", "al_id"])
    assert len(seen) == 27


def test_calibrated_acceptance_takes_frames_likely_above_the_target():
    frames = frames_along_path(20, step=0.0)
    u = np.linspace(0.0105, 0.2005, 20)  # no frame exactly at the threshold 0.1
    fit = Calibration(factor=2.0, spread=0.2, n=30)
    table = select(frames, u, [0.0], rule(acceptance="calibrated", calibrated_probability=0.5),
                   np.random.default_rng(0), calibrated=fit, target=0.2)  # fmt: skip
    # error = 2 u exceeds 0.2 with probability >= 0.5 exactly when u >= 0.1
    accepted = table["decision"] != "not_accepted"
    assert (accepted == (u >= 0.1)).all()
    assert table["threshold"].iloc[0] == pytest.approx(0.1)
    assert uncertain_fraction(table) == pytest.approx(np.mean(u >= 0.1))
    with pytest.raises(ValueError, match="calibration"):
        select(frames, u, [0.0], rule(acceptance="calibrated"), np.random.default_rng(0))


def test_fill_meets_the_label_budget_from_the_next_most_uncertain_frames():
    """Two frames are accepted; fill takes the budget's other four from the most uncertain
    of the rest, keeping walker frames 100 fs apart and passing over unphysical ones."""
    frames = trajectories(2, 20)
    frames[19].positions[1] = frames[19].positions[0] + [0.5, 0, 0]  # too close: never taken
    u = np.array([1.0 + 0.005 * i for i in range(len(frames))])  # below the threshold 1.3
    u[[5, 30]] = 10.0  # one clearly uncertain frame per walker
    strict = rule(max_frames=6, shift=2.0, gradient=0.01, min_time_separation=100.0)
    plain = select(frames, u, [1.0, 1.2], strict, np.random.default_rng(0))
    assert sorted(plain.index[plain["selected"]]) == [5, 30]
    filled = select(frames, u, [1.0, 1.2], Selection(**(vars(strict) | {"fill": True})),
                    np.random.default_rng(0))  # fmt: skip
    chosen = filled.index[filled["selected"]]
    assert len(chosen) == 6
    assert filled.loc[[5, 30], "decision"].tolist() == ["selected", "selected"]
    extra = filled.loc[filled["decision"] == "filled"]
    # most uncertain first (walker 1's late frames: 20 fs apart, u rising with the index),
    # each 100 fs from the kept frames of its walker (30 at 200 fs); 19 is unphysical
    assert sorted(extra.index) == [18, 20, 25, 39]
    for _, group in filled.loc[chosen].groupby("walker"):
        assert np.diff(np.sort(group["time_fs"].to_numpy())).min() >= 100.0
    # enough accepted frames: nothing is filled
    many = select(frames, u, [0.0, 0.001], Selection(**(vars(strict) | {"fill": True,
                  "shift": 0.0, "gradient": 1.0})), np.random.default_rng(0))  # fmt: skip
    assert (many["decision"] == "filled").sum() == 0 and many["selected"].sum() == 6


def test_feature_diversity_picks_frames_spread_over_the_feature_space():
    """Three kinds of frames (clusters of descriptors); the most uncertain are all of one
    kind. Most-uncertain-first takes three of it; farthest-point one of each kind."""
    frames = trajectories(1, 30)
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    kind = np.arange(30) % 3
    for atoms, k in zip(frames, kind, strict=True):
        atoms.info["ens_descriptor"] = centres[k] + rng.normal(0, 0.1, 3)
    u = np.where(kind == 0, 2.0, 1.0) + 0.001 * np.arange(30)
    base = dict(max_frames=3, shift=0.0, gradient=1.0)
    by_time = select(frames, u, [0.0, 0.001], rule(**base), np.random.default_rng(0))
    assert set(kind[by_time["selected"]]) == {0}
    diverse = select(frames, u, [0.0, 0.001], rule(**base, diversity="features"),
                     np.random.default_rng(0))  # fmt: skip
    chosen = np.flatnonzero(diverse["selected"])
    assert sorted(kind[chosen]) == [0, 1, 2]
    assert u[chosen].max() == u.max()  # the first pick is the most uncertain frame
    assert (diverse["decision"] == "over_cap").sum() == 27
    # frames without descriptors (compiled members) are refused with the fix
    for atoms in frames:
        del atoms.info["ens_descriptor"]
    with pytest.raises(ValueError, match="selection.diversity: time"):
        select(frames, u, [0.0, 0.001], rule(**base, diversity="features"),
               np.random.default_rng(0))  # fmt: skip
