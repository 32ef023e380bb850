"""The convergence decision."""

from almomd.convergence import decide

METRICS = {"force_rmse": 0.08, "energy_rmse": 0.002}


def test_goes_on_until_max_iterations():
    rule = {"force_rmse": None, "energy_rmse": None, "min_selected": 0}
    assert not decide(0, 3, METRICS, 5, rule).stop
    last = decide(2, 3, METRICS, 5, rule)
    assert last.stop and not last.converged
    assert "max_iterations 3" in last.reason


def test_error_targets_all_must_hold():
    rule = {"force_rmse": 0.1, "energy_rmse": 0.001, "min_selected": 0}
    assert not decide(0, 5, METRICS, 5, rule).stop
    rule["energy_rmse"] = 0.01
    decision = decide(0, 5, METRICS, 5, rule)
    assert decision.stop and decision.converged
    assert "test force RMSE 0.08" in decision.reason


def test_few_or_no_selected_frames_converge():
    rule = {"force_rmse": None, "energy_rmse": None, "min_selected": 3}
    assert decide(0, 5, METRICS, 2, rule).converged
    assert not decide(0, 5, METRICS, 3, rule).stop
    assert decide(0, 5, METRICS, 0, {"min_selected": 0}).converged
