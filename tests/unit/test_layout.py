"""almomd.layout: where a campaign's files live; an iteration's decision as it stands."""

from almomd import layout


def test_the_current_decision_is_the_last_one_made(tmp_path):
    assert layout.decision_number(tmp_path, 1) == 0
    first = layout.path(layout.DECISION, tmp_path, iteration=1)
    first.parent.mkdir(parents=True)
    first.write_text("{}")
    assert layout.decision_number(tmp_path, 1) == 1
    assert layout.current_decision(tmp_path, 1) == first
    for number in (2, 10):  # decided again twice, after the stop rules changed
        (tmp_path / layout.decision_file(1, number)).write_text("{}")
    assert layout.decision_number(tmp_path, 1) == 10
    assert layout.current_decision(tmp_path, 1) == tmp_path / "results/iter_1/decision_10.json"
    assert layout.decision_file(1, 1) == layout.DECISION.format(iteration=1)
