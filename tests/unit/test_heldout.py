"""Reference MD with the labeler: decorrelated, labeled frames of independent trajectories."""

import logging

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import assert_labels_equal

from almomd.data.frames import frame_ids, read_frames
from almomd.data.trajectories import read_trajectories
from almomd.evaluation import reference_md, statistics
from almomd.evaluation.heldout import trajectory_of
from almomd.exploration.md import MDSettings
from almomd.labeling.labelers import Labeler, LabelerSettings
from almomd.settings.campaign import Condition

START = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))


def run(tmp_path, equilibration, between, n=3, trajectories=1, labeler=None, dynamics=None):
    settings = MDSettings("nvt_langevin", 600.0, 2.0, 0.02, 0, 1, 1.0)
    return reference_md.reference_md(
        START,
        labeler or Labeler(LabelerSettings(name="emt")),
        settings,
        Condition(0, 600.0, None, "cu"),
        n, equilibration, between,
        [np.random.default_rng(t) for t in range(trajectories)],
        str(tmp_path / f"ref_{equilibration}.extxyz"),
        dynamics_out=dynamics,
    )  # fmt: skip


def test_frames_start_after_equilibration_and_lie_two_autocorrelation_times_apart(tmp_path):
    frames = run(tmp_path, equilibration=6, between=4)
    steps = [a.info["al_step"] for a in frames]
    assert steps[0] == 6
    stride = steps[1] - steps[0]
    assert steps == [6, 6 + stride, 6 + 2 * stride]
    assert stride >= 4
    # the energy of 600 K Cu MD stays correlated over more than 2 steps of 2 fs:
    # the measured time, not steps_between, set the stride
    assert stride > 4
    assert frame_ids(frames) == [f"ref-c0-s{s:06d}" for s in steps]
    assert {a.info["al_condition"] for a in frames} == {"600 K"}
    assert {trajectory_of(a) for a in frames} == {"c0-t0"}
    assert_labels_equal(frames, frames, EMT, atol=1e-6)
    written = read_frames(tmp_path / "ref_6.extxyz")
    assert frame_ids(written) == frame_ids(frames)


def test_the_kept_dynamics_hold_every_step_and_the_frames_among_them(tmp_path):
    frames = run(tmp_path, 4, 3, trajectories=2, dynamics=tmp_path / "dynamics.npz")
    kept = read_trajectories(tmp_path / "dynamics.npz")
    assert [t.name for t in kept] == ["reference c0-t0", "reference c0-t1"]
    for t in kept:
        assert (t.timestep, t.temperature, t.stopped) == (2.0, 600.0, "")
        assert t.positions.shape == (len(t.energies), len(START), 3)
    for atoms in frames:  # each frame is its trajectory's step, counted after equilibration
        t = {k.name: k for k in kept}["reference " + atoms.info["al_trajectory"]]
        step = atoms.info["al_step"] - 4
        assert np.allclose(t.positions[step], atoms.positions)
        assert np.allclose(t.forces[step], atoms.get_forces())
        assert t.energies[step] == pytest.approx(atoms.get_potential_energy())


def test_without_equilibration_the_first_frame_is_the_start(tmp_path):
    frames = run(tmp_path, equilibration=0, between=5)
    assert frames[0].info["al_step"] == 0
    np.testing.assert_allclose(frames[0].positions, START.positions)


def test_trajectories_are_independent_and_tagged(tmp_path):
    frames = run(tmp_path, equilibration=4, between=3, n=5, trajectories=2)
    by_trajectory = {}
    for atoms in frames:
        by_trajectory.setdefault(trajectory_of(atoms), []).append(atoms)
    assert [len(v) for v in by_trajectory.values()] == [3, 2]  # 5 frames over 2
    first, second = by_trajectory["c0-t0"], by_trajectory["c0-t1"]
    assert first[0].info["al_step"] == second[0].info["al_step"] == 4
    assert not np.allclose(first[0].positions, second[0].positions)  # own velocities
    assert len(set(frame_ids(frames))) == 5
    assert_labels_equal(frames, frames, EMT, atol=1e-6)


def test_a_failed_step_is_redone_with_the_labelers_fallback(tmp_path, caplog):
    """The labeler fails from its 20th call on (in equilibration or after): the step is
    redone with the fallback settings, which label the rest; without them the run stops."""
    flaky = {"name": "flaky_labelers:FailsAfter", "parameters": {"after": 20}}
    labeler = Labeler(LabelerSettings(**flaky, fallback={"mixing": 0.1}))
    frames = run(tmp_path, equilibration=10, between=4, n=4, labeler=labeler)
    assert len(frames) == 4
    assert "redone with labeler.fallback" in caplog.text
    assert_labels_equal(frames, frames, EMT, atol=1e-6)  # the fallback labels are EMT's
    assert "stopped" not in caplog.text
    caplog.clear()
    plain = run(tmp_path / "plain", equilibration=10, between=4, n=4,
                labeler=Labeler(LabelerSettings(**flaky)))  # fmt: skip
    assert "trajectory 0 stopped: labeler failed after 9 steps" in caplog.text
    assert plain[-1].info["al_step"] < frames[-1].info["al_step"]


def test_a_labeler_that_fails_now_and_then_gives_every_frame(tmp_path, caplog):
    """Every third single point raises: each failed step is redone from the state before
    it with fresh velocities, the run gives all its frames, and says how many it redid."""
    caplog.set_level(logging.INFO)
    labeler = Labeler(LabelerSettings(name="flaky_labelers:FailsEveryThird"))
    frames = run(tmp_path, equilibration=6, between=3, n=4, trajectories=2, labeler=labeler)
    assert len(frames) == 4
    assert_labels_equal(frames, frames, EMT, atol=1e-6)
    redone = {a.info["al_trajectory"]: a.info["al_redone_steps"] for a in frames}
    assert set(redone) == {"c0-t0", "c0-t1"} and min(redone.values()) > 0
    assert f"{redone['c0-t0']} failed steps redone" in caplog.text
    assert "stopped" not in caplog.text


def test_a_labeler_that_always_fails_stops_with_its_error(tmp_path):
    labeler = Labeler(LabelerSettings(name="flaky_labelers:NaNForces"))
    with pytest.raises(RuntimeError, match="kept 0 frame.*failed in equilibration: .*finite"):
        run(tmp_path, equilibration=2, between=2, n=3, labeler=labeler)


def test_frames_split_over_trajectories():
    assert reference_md.frames_per_trajectory(8, 2) == [4, 4]
    assert reference_md.frames_per_trajectory(7, 3) == [3, 2, 2]


def ar1(phi, n, rng):
    x = np.empty(n)
    x[0] = rng.normal()
    for i in range(1, n):
        x[i] = phi * x[i - 1] + rng.normal() * np.sqrt(1 - phi**2)
    return x


def test_autocorrelation_time_of_a_known_process():
    rng = np.random.default_rng(1)
    # AR(1) with coefficient phi: tau = (1 + phi) / (2 (1 - phi))
    assert statistics.autocorrelation_time(ar1(0.9, 20000, rng)) == pytest.approx(9.5, rel=0.15)
    assert statistics.autocorrelation_time(rng.normal(size=5000)) == pytest.approx(0.5, abs=0.1)


def test_effective_n_counts_trajectories_where_frames_of_one_agree():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(6), 10)
    independent = rng.normal(size=60)
    assert statistics.effective_n(independent, groups) == pytest.approx(60, rel=0.35)
    shared = np.repeat(rng.normal(size=6), 10) + 0.01 * rng.normal(size=60)
    assert statistics.effective_n(shared, groups) == pytest.approx(6, rel=0.2)
    assert statistics.effective_n(shared) == 60  # no groups: every frame counts
    # one trajectory: its autocorrelation decides
    assert statistics.effective_n(ar1(0.9, 400, rng), np.zeros(400)) < 100


def test_the_grouped_interval_widens_where_trajectories_differ():
    rng = np.random.default_rng(3)
    counts = np.full(16, 96.0)
    groups = np.repeat([0, 1], 8)
    per_frame = np.r_[np.full(8, 0.04), np.full(8, 0.08)] + rng.normal(0, 0.002, 16)
    sq = per_frame**2 * counts
    low, high = statistics.rmse_interval(sq, counts, rng)
    group_low, group_high = statistics.rmse_interval(sq, counts, rng, groups=groups)
    assert group_high - group_low > 1.5 * (high - low)
    assert group_low < 0.045 and group_high > 0.075  # all from one trajectory, either one
    # strata are never mixed: two conditions of one trajectory each resample frames
    strata = groups
    s_low, s_high = statistics.rmse_interval(sq, counts, rng, groups=groups, strata=strata)
    assert s_high - s_low < group_high - group_low
