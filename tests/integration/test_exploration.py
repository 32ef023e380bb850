"""Exploration walkers with a real trained ensemble (the .test campaign's models)."""

import numpy as np
import pytest
from ase.build import bulk

from almomd.data.frames import read_frames
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.exploration.md import MDSettings, run_walker

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def calculator(campaign):
    models = sorted((campaign / "results" / "iter_0" / "models").glob("*.nequip.zip"))
    return EnsembleCalculator([str(m) for m in models])


def settings(**changes):
    base = dict(
        thermostat="nvt_langevin",
        temperature=600.0,
        timestep=2.0,
        friction=0.02,
        steps=20,
        log_interval=5,
        min_distance=1.0,
    )
    return MDSettings(**(base | changes))


def cell():
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


def test_walker_logs_every_interval_with_uncertainties(calculator, tmp_path):
    frames, reason = run_walker(
        cell(), calculator, settings(), 3, np.random.default_rng(0), tmp_path / "w.extxyz", 4
    )
    assert reason == "completed"
    back = read_frames(tmp_path / "w.extxyz")
    assert [a.info["al_step"] for a in back] == [0, 5, 10, 15, 20]
    assert back[-1].info["al_id"] == "it4-w3-s000020"
    assert all(a.info["al_walker"] == 3 and a.info["al_iteration"] == 4 for a in back)
    assert all(np.isfinite(a.info["u_force_max"]) for a in back)
    assert back[-1].info["u_force_max"] > 0
    assert back[-1].arrays["ens_forces"].shape == (32, 3)


def test_same_seed_same_trajectory(calculator, tmp_path):
    a, _ = run_walker(
        cell(), calculator, settings(steps=10), 0, np.random.default_rng(5), tmp_path / "a.extxyz"
    )
    b, _ = run_walker(
        cell(), calculator, settings(steps=10), 0, np.random.default_rng(5), tmp_path / "b.extxyz"
    )
    np.testing.assert_array_equal(a[-1].positions, b[-1].positions)


def test_walker_stops_on_close_atoms_and_keeps_frames(calculator, tmp_path):
    frames, reason = run_walker(
        cell(),
        calculator,
        settings(min_distance=3.0),
        0,
        np.random.default_rng(0),
        tmp_path / "w.extxyz",
    )
    assert reason == "min_distance"
    assert len(frames) == 1
    assert read_frames(tmp_path / "w.extxyz")[0].info["walker_stop"] == "min_distance"


def test_walker_stops_above_the_uncertainty_ceiling(calculator, tmp_path):
    frames, reason = run_walker(
        cell(),
        calculator,
        settings(max_uncertainty=1e-6),
        0,
        np.random.default_rng(0),
        tmp_path / "w.extxyz",
    )
    assert reason == "max_uncertainty"
    assert frames[-1].info["u_force_max"] > 1e-6
    assert len(frames) < 5


def test_npt_higher_pressure_gives_smaller_volume(calculator, tmp_path):
    start = cell()
    mean_volume = {}
    for pressure in (0.0, 5.0):
        frames, reason = run_walker(
            start,
            calculator,
            settings(thermostat="npt", pressure=pressure, barostat_time=50.0, steps=200),
            0,
            np.random.default_rng(0),
            tmp_path / f"w{pressure}.extxyz",
        )
        assert reason in ("completed", "volume")
        volumes = [a.get_volume() / start.get_volume() for a in frames]
        assert all(1 / 1.5 <= v <= 1.5 for v in volumes[:-1])
        mean_volume[pressure] = np.mean(volumes[len(volumes) // 2 :])
    assert mean_volume[0.0] != pytest.approx(1.0, rel=1e-3)  # the cell does move
    assert mean_volume[5.0] < mean_volume[0.0]


def test_a_biased_walker_on_the_real_ensemble(calculator, tmp_path):
    """The bias runs on the batched NequIP ensemble; the logged predictions stay unbiased."""
    frames, reason = run_walker(
        cell(), calculator, settings(bias={"strength": 0.5, "width": 0.01}, restarts=1), 0,
        np.random.default_rng(0), tmp_path / "w.extxyz",
    )  # fmt: skip
    assert reason == "completed"
    assert all(-0.5 <= a.info["md_bias_energy"] <= 0 for a in frames)
    assert min(a.info["md_bias_energy"] for a in frames) < 0
    start = cell()
    start.calc = calculator
    assert frames[0].info["ens_energy"] == pytest.approx(start.get_potential_energy(), abs=1e-6)
