"""The convergence decision: held-out errors with intervals, and the uncertainty criterion."""

import pytest

from almomd.evaluation import convergence
from almomd.evaluation.convergence import decide
from almomd.settings.sections import Convergence


def heldout(force=0.08, ci=(0.07, 0.09), source="reference_md", covers=True, n=24):
    return {
        "source": source,
        "covers_conditions": covers,
        "n_frames": n,
        "level": 0.95,
        "force_rmse": force,
        "force_rmse_ci": list(ci),
        "energy_rmse": 0.002,
        "energy_rmse_ci": [0.0015, 0.0025],
    }


def rule(**changes):
    base = {"force_rmse": None, "energy_rmse": None, "min_selected": 0,
            "uncertain_fraction": None, "stable_iterations": 3}  # fmt: skip
    return Convergence(**(base | changes))


def test_goes_on_until_max_iterations():
    assert not decide(0, 3, heldout(), [0.5], 5, rule()).stop
    last = decide(2, 3, heldout(), [0.5] * 3, 5, rule())
    assert last.stop and not last.converged
    assert "max_iterations 3" in last.reason


def test_error_target_needs_the_whole_interval_below_it():
    assert not decide(0, 5, heldout(), [0.5], 5, rule(force_rmse=0.085)).stop  # CI reaches 0.09
    decision = decide(0, 5, heldout(), [0.5], 5, rule(force_rmse=0.1))
    assert decision.stop and decision.converged
    assert "held-out force RMSE 0.08" in decision.reason
    assert "n=24" in decision.reason and "0.07-0.09" in decision.reason
    figure = decision.decided_by[0]
    assert (figure.name, figure.n, figure.interval, figure.ok) == (
        "force_rmse",
        24,
        (0.07, 0.09),
        True,
    )
    assert not decide(0, 5, heldout(), [0.5], 5, rule(force_rmse=0.1, energy_rmse=0.002)).stop
    missing = heldout(ci=(None, None), n=1)
    assert not decide(0, 5, missing, [0.5], 5, rule(force_rmse=0.1)).stop


def test_a_good_test_set_figure_is_not_enough_and_is_flagged():
    """Good on frames that do not cover the conditions: converged only with that said."""
    on_test_set = decide(0, 5, heldout(0.02, (0.018, 0.022), "test_set", False), [0.0], 5,
                         rule(force_rmse=0.025))  # fmt: skip
    assert on_test_set.converged
    assert "does not represent the exploration conditions" in on_test_set.reason
    at_conditions = decide(0, 5, heldout(0.06, (0.05, 0.07)), [0.0], 5, rule(force_rmse=0.025))
    assert not at_conditions.stop and not at_conditions.converged


def test_uncertainty_criterion_needs_consecutive_iterations():
    strict = rule(force_rmse=0.1, uncertain_fraction=0.1, stable_iterations=3)
    assert not decide(2, 9, heldout(), [0.05, 0.2, 0.05], 5, strict).stop  # streak broken
    assert not decide(1, 9, heldout(), [0.05, 0.05], 5, strict).stop  # only two so far
    decision = decide(3, 9, heldout(), [0.3, 0.05, 0.08, 0.1], 5, strict)
    assert decision.converged
    assert "met 3 of 3" in decision.reason
    fraction = decision.decided_by[1]
    assert fraction.value == pytest.approx(0.1) and fraction.ok
    # the error figure still has to hold
    assert not decide(3, 9, heldout(0.2, (0.15, 0.25)), [0.0] * 4, 5, strict).stop


def test_few_or_no_selected_frames_converge():
    assert decide(0, 5, heldout(), [0.5], 2, rule(min_selected=3)).converged
    assert not decide(0, 5, heldout(), [0.5], 3, rule(min_selected=3)).stop
    assert decide(0, 5, heldout(), [0.5], 0, rule()).converged


def test_a_changed_stop_rule_redecides_only_the_last_iteration():
    then = {"max_iterations": 2, "convergence": {"force_rmse": 0.05, "patience": 1}, "seed": 1}
    now = {**then, "seed": 2}  # not a stop rule
    assert convergence.changed_stop_rules(then, now) == []
    now = {**then, "max_iterations": 3, "convergence": {"force_rmse": 0.04, "patience": 1}}
    assert convergence.changed_stop_rules(then, now) == [
        "convergence.force_rmse: 0.05 -> 0.04",
        "max_iterations: 2 -> 3",
    ]
    decision = {"stop": True, "settings": then}
    assert convergence.redecided(decision, False, now) == convergence.changed_stop_rules(then, now)
    assert convergence.redecided(decision, True, now) == []  # history: the next one has begun
    assert convergence.redecided({"stop": True}, False, now) == []  # settings not recorded


def observed(condition="600 K", **agree):
    rows = {name: {"agree": flag, "parts": {}} for name, flag in agree.items()}
    return {"condition": condition, "observables": rows | {"_protocol": {}}}


def test_observables_named_must_agree_at_every_condition():
    wanted = rule(force_rmse=0.1, observables=("rdf", "msd"))
    off = [observed("300 K", rdf=True, msd=True), observed("600 K", rdf=True, msd=False)]
    decision = decide(0, 5, heldout(), [0.5], 5, wanted, off)
    assert not decision.stop
    assert "msd at 600 K disagrees" in decision.reason
    on = [observed("300 K", rdf=True, msd=True), observed("600 K", rdf=True, msd=True)]
    assert decide(0, 5, heldout(), [0.5], 5, wanted, on).converged
    # named but not measured: no verdict on them, no convergence
    assert not decide(0, 5, heldout(), [0.5], 5, wanted, []).stop
    missing = [observed("300 K", rdf=True), observed("600 K", rdf=True, msd=True)]
    decision = decide(0, 5, heldout(), [0.5], 5, wanted, missing)
    assert not decision.stop and "msd at 300 K not measured" in decision.reason


def test_a_campaign_converged_on_forces_says_which_observable_disagrees():
    found = [observed("600 K", rdf=True, diffusion=False, stability=True)]
    decision = decide(0, 5, heldout(), [0.5], 5, rule(force_rmse=0.1), found)
    assert decision.converged
    assert "disagree with the reference dynamics, or unstable): diffusion at 600 K" in (
        decision.reason
    )
