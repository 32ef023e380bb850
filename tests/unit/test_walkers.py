"""Exploration walkers: uncertainty bias, temperature ramp and restarts (a stand-in ensemble)."""

import numpy as np
import pytest
from ase.build import bulk
from toy_ensemble import ARGON, ToyEnsemble, argon, md_settings

from almomd.data.frames import read_frames
from almomd.exploration.md import run_walker


def walk(tmp_path, name="w", **changes):
    frames, reason = run_walker(
        argon(), ToyEnsemble(ARGON), md_settings(**changes), 0, np.random.default_rng(1),
        tmp_path / f"{name}.extxyz",
    )  # fmt: skip
    return read_frames(tmp_path / f"{name}.extxyz"), reason


def test_biased_walker_records_its_bias_and_the_unbiased_ensemble(tmp_path):
    frames, reason = walk(tmp_path, bias={"strength": 1.0, "width": 0.05})
    assert reason == "completed"
    bias = [a.info["md_bias_energy"] for a in frames]
    assert all(-1.0 <= b <= 0 for b in bias) and min(bias) < -0.1
    # the stored ensemble energy is the members' mean, without the bias
    plain, _ = walk(tmp_path, "plain")
    assert all(a.info["md_bias_energy"] == 0.0 for a in plain)
    start = ToyEnsemble(ARGON)
    atoms = argon()
    atoms.calc = start
    assert frames[0].info["ens_energy"] == pytest.approx(atoms.get_potential_energy())


def test_the_bias_drives_the_walker_toward_disagreement(tmp_path):
    plain, _ = walk(tmp_path, "plain", steps=200, log_interval=10)
    # the members' energy spread is about 0.16 eV here: a width of 0.05 eV/sqrt(atom)
    # keeps the bias in its active range (a much smaller width saturates it, flat)
    biased, _ = walk(tmp_path, "biased", steps=200, log_interval=10,
                     bias={"strength": 3.0, "width": 0.05})  # fmt: skip
    for metric in ("u_energy", "u_force_max"):
        plain_mean, biased_mean = (np.mean([a.info[metric] for a in run[5:]])
                                   for run in (plain, biased))  # fmt: skip
        assert biased_mean > 1.1 * plain_mean, metric


def test_an_automatic_bias_width_drives_the_walker_toward_disagreement(tmp_path):
    plain, _ = walk(tmp_path, "plain", steps=200, log_interval=10)
    biased, _ = walk(tmp_path, "auto", steps=200, log_interval=10,
                     bias={"strength": 3.0, "width": "auto", "warmup_steps": 10})  # fmt: skip
    widths = [a.info["md_bias_width"] for a in biased]
    assert np.isnan(widths[0])  # measuring
    assert len(set(widths[2:])) == 1 and widths[-1] > 0  # measured once, then kept
    for metric in ("u_energy", "u_force_max"):
        plain_mean, biased_mean = (np.mean([a.info[metric] for a in run[5:]])
                                   for run in (plain, biased))  # fmt: skip
        assert biased_mean > 1.1 * plain_mean, metric


def test_temperature_ramp_moves_the_thermostat_target_linearly(tmp_path):
    frames, _ = walk(tmp_path, temperature=50.0, temperature_end=150.0, steps=40)
    targets = [a.info["md_target_temperature"] for a in frames]
    assert targets == pytest.approx([50.0 + 100.0 * s / 40 for s in range(0, 41, 5)])
    constant, _ = walk(tmp_path, "constant")
    assert {a.info["md_target_temperature"] for a in constant} == {80.0}


def test_a_walker_restarts_from_its_last_trusted_frame(tmp_path):
    ceiling = 1e-9  # every frame after the first is above it
    stopped, reason = walk(tmp_path, "stopped", max_uncertainty=ceiling)
    assert reason == "max_uncertainty" and len(stopped) < 9
    frames, reason = walk(tmp_path, "restarted", max_uncertainty=ceiling, restarts=3)
    assert reason == "max_uncertainty"
    assert frames[-1].info["walker_restarts"] == 3
    restarts = [a.info["md_restarts"] for a in frames]
    assert restarts == sorted(restarts) and restarts[-1] == 3
    assert len(frames) > len(stopped)
    steps = [a.info["al_step"] for a in frames]
    assert steps == sorted(set(steps))  # MD time goes on across restarts


@pytest.mark.parametrize(
    ("setting", "steps", "periodic", "aot", "compiled"),
    [
        ("auto", 300, True, False, False),  # the demo's walkers: 300 x 32 x 4 is too short
        ("auto", 5000, True, False, True),  # a long walker earns the compile time back
        ("auto", 5000, False, False, False),  # no periodic cell: nothing to pad
        ("auto", 5000, True, True, False),  # AOTInductor members run one by one
        (True, 10, True, False, True),  # as set
        (False, 10**6, True, False, False),
    ],
)
def test_the_ensemble_is_compiled_where_it_pays_off(setting, steps, periodic, aot, compiled):
    from almomd.ensemble.batched import COMPILE_SECONDS, SAVED_SECONDS_PER_ATOM_MEMBER_STEP
    from almomd.settings.sections import Settings
    from almomd.stages.exploration import compile_choice

    start = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))  # 32 atoms
    start.pbc = periodic
    config = {"exploration": {"torch_compile": setting}, "training": {"compile": aot}}
    assert compile_choice(Settings.from_config(config), start, steps, 4) is compiled
    break_even = COMPILE_SECONDS / (len(start) * 4 * SAVED_SECONDS_PER_ATOM_MEMBER_STEP)
    assert 300 < break_even < 5000  # where the measured costs put the two walkers above


def test_a_continued_walker_starts_from_the_last_trusted_frame_and_its_velocities(tmp_path):
    from almomd.exploration.continuation import continued_start

    first, _ = walk(tmp_path, "first", max_uncertainty=None)
    frame, why = continued_start(tmp_path / "first.extxyz", argon(), "bulk")
    assert frame is not None and "going on from" in why
    assert frame.info["al_step"] == first[-1].info["al_step"]
    frames, reason = run_walker(
        argon(), ToyEnsemble(ARGON), md_settings(), 0, np.random.default_rng(2),
        tmp_path / "second.extxyz", iteration=1, continued=frame,
    )  # fmt: skip
    second = read_frames(tmp_path / "second.extxyz")
    np.testing.assert_allclose(second[0].positions, first[-1].positions, atol=1e-8)
    np.testing.assert_allclose(second[0].get_momenta(), first[-1].get_momenta(), atol=1e-8)
    assert second[0].info["md_continued_from"] == first[-1].info["al_id"]
    elapsed = [a.info["md_elapsed_fs"] for a in second]
    assert elapsed[0] == first[-1].info["md_elapsed_fs"] == 200.0  # 40 steps of 5 fs
    assert elapsed[-1] == 400.0


def test_a_walker_goes_on_from_before_the_frame_that_stopped_it(tmp_path):
    from almomd.exploration.continuation import continued_start, last_trusted

    frames, reason = walk(tmp_path, "stopped", max_uncertainty=1e-9)
    assert reason == "max_uncertainty" and not frames[-1].info["md_trusted"]
    assert last_trusted(frames).info["al_step"] == 0  # the only frame below the ceiling
    only_bad = [frames[-1]]
    assert last_trusted(only_bad) is None
    frame, why = continued_start(tmp_path / "stopped.extxyz", argon(), "bulk")
    assert frame.info["al_step"] == 0


def test_a_previous_walker_of_another_structure_is_not_gone_on_from(tmp_path):
    from almomd.exploration.continuation import continued_start

    walk(tmp_path, "first")
    smaller = argon()[:-1]
    frame, why = continued_start(tmp_path / "first.extxyz", smaller, "bulk")
    assert frame is None and "other atoms" in why
    first = read_frames(tmp_path / "first.extxyz")
    for atoms in first:
        atoms.info["al_system"] = "surface"
    from almomd.data.frames import write_frames

    write_frames(tmp_path / "other.extxyz", first)
    frame, why = continued_start(tmp_path / "other.extxyz", argon(), "bulk")
    assert frame is None and "system surface" in why
