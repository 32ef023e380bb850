"""Walkers in one pass: the trajectories they have alone; one that stops stops no other."""

import numpy as np
import pytest
from toy_ensemble import ARGON, ToyEnsemble, argon, md_settings

from almomd.data.frames import read_frames
from almomd.exploration.md import run_walker
from almomd.exploration.packed import Lockstep, run_together


def settings(**changes):
    return md_settings(**({"steps": 30} | changes))


#: three walkers: another temperature, a bias, and one that stops at its first check
WALKERS = [
    settings(),
    settings(temperature=120.0, bias={"strength": 1.0, "width": 0.05}),
    settings(max_uncertainty=1e-9),
]


def walk(index, calculator, out):
    frames, reason = run_walker(argon(), calculator, WALKERS[index], index,
                                np.random.default_rng(index), out)  # fmt: skip
    return reason


class Counting(ToyEnsemble):
    """Counts its evaluations."""

    calls = 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        super().calculate(*args, **kwargs)


def test_walkers_in_one_pass_follow_their_trajectories_alone(tmp_path):
    alone, evaluations = [], []
    for i in range(3):
        ensemble = Counting(ARGON)
        alone.append(walk(i, ensemble, tmp_path / f"alone_{i}.extxyz"))
        evaluations.append(ensemble.calls)
    ensemble = ToyEnsemble(ARGON)
    calls = []
    original = ensemble.results_for
    ensemble.results_for = lambda structures: calls.append(len(structures)) or original(structures)
    together = run_together(ensemble, [
        lambda calc, i=i: walk(i, calc, tmp_path / f"packed_{i}.extxyz") for i in range(3)
    ])  # fmt: skip
    assert together == alone == ["completed", "completed", "max_uncertainty"]
    for i in range(3):
        a, b = (read_frames(tmp_path / f"{kind}_{i}.extxyz") for kind in ("alone", "packed"))
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(y.positions, x.positions, rtol=0, atol=1e-10)
            assert y.info["u_force_max"] == pytest.approx(x.info["u_force_max"], rel=1e-10)
            assert y.info["md_bias_energy"] == pytest.approx(x.info["md_bias_energy"], abs=1e-12)
    # the third stopped after its first logged stretch; the other two went on, together
    assert len(read_frames(tmp_path / "packed_2.extxyz")) < 7
    assert len(read_frames(tmp_path / "packed_0.extxyz")) == 7
    # in lockstep: as many passes as the longest walker needs, each evaluation in one of them
    assert len(calls) == max(evaluations) and sum(calls) == sum(evaluations)
    assert calls[0] == 3 and calls[-1] == 2


def test_an_error_in_one_walker_reaches_the_caller_and_the_others_finish(tmp_path):
    def broken(calc):
        raise RuntimeError("walker 1 broke")

    done = []

    def fine(calc):
        done.append(walk(0, calc, tmp_path / "fine.extxyz"))

    with pytest.raises(RuntimeError, match="walker 1 broke"):
        run_together(ToyEnsemble(ARGON), [fine, broken])
    assert done == ["completed"]


def test_a_failed_pass_is_raised_in_every_walker_of_it():
    class Failing:
        def results_for(self, structures):
            raise ValueError("no features")

    lockstep = Lockstep(Failing(), 1)
    with pytest.raises(ValueError, match="no features"):
        lockstep.evaluate(0, argon())
