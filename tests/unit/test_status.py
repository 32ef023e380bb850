"""almomd.reporting.status: what stopped a campaign before its first iteration."""

from almomd.reporting.status import stopped_steps


def test_the_error_of_a_step_whose_output_is_missing_is_told(tmp_path):
    logs = tmp_path / "logs"
    (logs / "heldout").mkdir(parents=True)
    (logs / "initial").mkdir()
    (logs / "heldout" / "reference_0.log").write_text(
        "2026-12-06 INFO reference MD 600 K\nTraceback (most recent call last):\n"
        "RuntimeError: reference MD at 600 K kept 0 frame(s)\n"
    )
    (logs / "initial" / "label_1.log").write_text("RuntimeError: an earlier try\n")
    labeled = tmp_path / "results" / "initial" / "labels" / "labeled_1.extxyz"
    labeled.parent.mkdir(parents=True)
    labeled.write_text("")  # the batch finished since: its old error is not told
    assert stopped_steps(tmp_path) == [
        "logs/heldout/reference_0.log: RuntimeError: reference MD at 600 K kept 0 frame(s)"
    ]
    labeled.unlink()
    assert stopped_steps(tmp_path)[0] == "logs/initial/label_1.log: RuntimeError: an earlier try"
