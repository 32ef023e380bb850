"""almomd.lineage: which lost files a campaign was built from, and the one way back."""

from __future__ import annotations

from pathlib import Path

import pytest

from almomd import layout, lineage

WALKERS, BATCHES = 2, 2


def iteration_files(i: int) -> list[str]:
    """The files a finished iteration ``i`` has, as the workflow writes them."""
    files = [layout.TRAIN, layout.member_file(i, 0, 0), layout.NOVELTY]
    files += [layout.WALKER.replace("{walker}", str(w)) for w in range(WALKERS)]
    files += [layout.TEST_METRICS, layout.TEST_TABLE, layout.HELDOUT_SUMMARY, layout.HELDOUT_TABLE]
    files += [layout.SELECTED, layout.CANDIDATES, layout.SELECTION_SUMMARY, layout.DECISION]
    files += [p.replace("{batch}", str(b)) for p in (layout.LABELED, layout.FAILED)
              for b in range(BATCHES)]  # fmt: skip
    return [f.format(iteration=i) for f in files]


def campaign(root: Path, iterations: int = 2) -> Path:
    """A finished campaign's files (empty: the lineage looks at which exist)."""
    files = [layout.TEST_SET, layout.STATUS]
    files += [p.format(batch=b) for p in (layout.INITIAL_LABELED, layout.INITIAL_FAILED)
              for b in range(BATCHES)]  # fmt: skip
    files += [f for i in range(iterations) for f in iteration_files(i)]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("[]")
    return root


def damage(root: Path) -> list[lineage.Damage]:
    return lineage.damage(root, WALKERS, BATCHES, generated_initial=True)


def test_an_intact_campaign_and_one_going_on_are_not_damaged(tmp_path):
    root = campaign(tmp_path)
    assert damage(root) == []
    # killed mid-labeling of the last iteration: half the batches, nothing made from them
    (root / layout.LABELED.format(iteration=1, batch=1)).unlink()
    (root / layout.DECISION.format(iteration=1)).unlink()
    assert damage(root) == []


def test_a_lost_training_set_is_requested_by_name_one_at_a_time(tmp_path):
    root = campaign(tmp_path)
    for i in (1, 0):
        (root / layout.TRAIN.format(iteration=i)).unlink()
    found = damage(root)
    assert lineage.requests(found) == ["results/iter_0/train.extxyz", "results/iter_1/train.extxyz"]
    text = lineage.advice(found)
    assert "snakemake --cores N results/iter_0/train.extxyz, then snakemake --cores N " in text
    # without the initial labels the first training set cannot be remade: all iterations go
    for b in range(BATCHES):
        (root / layout.INITIAL_LABELED.format(batch=b)).unlink()
    found = damage(root)
    assert lineage.requests(found) == []
    assert "delete results/iter_0 results/iter_1 results/data/test.extxyz" in lineage.advice(found)


def test_a_lost_label_batch_redoes_the_iterations_trained_on_it(tmp_path):
    root = campaign(tmp_path, iterations=3)
    (root / layout.LABELED.format(iteration=0, batch=1)).unlink()
    (found,) = damage(root)
    assert found.used_by == "results/iter_1/train.extxyz"
    assert found.delete == ("results/iter_1", "results/iter_2")


def test_lost_explored_frames_redo_the_selection_and_what_follows_only(tmp_path):
    root = campaign(tmp_path)
    (root / layout.WALKER.format(iteration=1, walker=0)).unlink()
    (found,) = damage(root)
    assert found.delete == (
        "results/iter_1/decision.json", "results/iter_1/labels", "results/iter_1/selection",
    )  # fmt: skip
    # a lost decision alone is made again from intact inputs: nothing depends on it
    root = campaign(tmp_path / "other")
    (root / layout.DECISION.format(iteration=0)).unlink()
    assert damage(root) == []


@pytest.mark.parametrize("deleted", [[0], [0, 1]])
def test_deleted_iterations(tmp_path, deleted):
    """An earlier iteration deleted under a later one: the later ones go; all deleted: none."""
    import shutil

    root = campaign(tmp_path)
    for i in deleted:
        shutil.rmtree(root / layout.ITERATION.format(iteration=i))
    found = damage(root)
    if deleted == [0]:
        assert lineage.requests(found) == []
        assert "delete results/iter_1 so that" in lineage.advice(found)
    else:
        assert found == []


def test_a_lost_test_set_is_remade_from_the_initial_labels(tmp_path):
    root = campaign(tmp_path)
    (root / layout.TEST_SET).unlink()
    assert lineage.requests(damage(root)) == [layout.TEST_SET]


def test_an_unreadable_status_is_written_again(tmp_path):
    root = campaign(tmp_path)
    assert lineage.unreadable_summaries(root) == []
    (root / layout.STATUS).write_text('[{"iteration": 0, "n_tr')
    assert lineage.unreadable_summaries(root) == [layout.STATUS]


def test_a_campaign_begun_without_the_labeler_check_goes_on_without_it(tmp_path):
    from almomd.planning.jobs import PlannedJob, remaining

    assert lineage.labeler_checked(tmp_path)  # a new campaign waits for the check
    root = campaign(tmp_path / "old")  # labeled before the check existed
    assert not lineage.labeler_checked(root)
    check = PlannedJob("labeler_check", {}, {}, 1, layout.LABELER_CHECK, ())
    label = PlannedJob("label_initial_batch", {"batch": "0"}, {}, 1,
                       layout.INITIAL_LABELED.format(batch=0), (check.key,))  # fmt: skip
    assert remaining([check, label], root) == []
    assert remaining([check, label], tmp_path) == [check, label]


def write_frames(path: Path, n: int) -> None:
    """``n`` frames of 32 Cu atoms, as extxyz."""
    from ase.build import bulk
    from ase.io import write

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, [bulk("Cu", cubic=True).repeat(2) for _ in range(n)], format="extxyz")


def test_frames_are_counted_and_a_cut_short_file_is_told(tmp_path):
    path = tmp_path / "frames.extxyz"
    write_frames(path, 3)
    assert lineage.count_frames(path) == 3
    text = path.read_text()
    path.write_text(text[: len(text) - 100])  # the last frame cut in the middle
    assert lineage.count_frames(path) is None
    one_frame = len(text) // 3
    path.write_text(text[:one_frame])  # at a frame's end: one whole frame
    assert lineage.count_frames(path) == 1
    path.write_text("")
    assert lineage.count_frames(path) == 0


def test_a_label_file_with_fewer_frames_than_were_sent_is_damage(tmp_path):
    """5 frames sent in 2 batches (3 and 2): batch 0 gives 2 labeled + 0 failed, which
    is damage once iteration 1 was made from it; the way back deletes the batch's files
    and the iterations trained on it, and damages nothing when it is whole."""
    root = campaign(tmp_path, iterations=3)
    write_frames(root / layout.SELECTED.format(iteration=0), 5)
    labeled, failed = (p.format(iteration=0, batch=0) for p in (layout.LABELED, layout.FAILED))
    write_frames(root / labeled, 3)
    write_frames(root / failed, 0)
    write_frames(root / layout.LABELED.format(iteration=0, batch=1), 1)
    write_frames(root / layout.FAILED.format(iteration=0, batch=1), 1)
    assert damage(root) == []
    write_frames(root / labeled, 2)  # cut short at a frame's end
    (found,) = damage(root)
    assert found.missing == labeled
    assert "holds 2 of the 3 frames sent to labeling" in found.problem
    assert found.delete == (labeled, failed, "results/iter_1", "results/iter_2")
    text = lineage.advice([found])
    assert text.startswith(f"{labeled} holds 2 of the 3 frames")
    assert "delete results/iter_0/labels/labeled_0.extxyz results/iter_0/labels/failed_0" in text
    # the same cut in the initial labels: every iteration and the test set are made again
    (root / labeled).write_text("")
    write_frames(root / labeled, 3)
    write_frames(root / layout.INITIAL_CANDIDATES, 4)
    for b, n in enumerate((2, 1)):
        write_frames(root / layout.INITIAL_LABELED.format(batch=b), n)
        write_frames(root / layout.INITIAL_FAILED.format(batch=b), 0)
    (found,) = damage(root)
    assert found.missing == layout.INITIAL_LABELED.format(batch=1)
    assert found.delete[2:] == ("results/iter_0", "results/iter_1", "results/iter_2",
                                layout.TEST_SET)  # fmt: skip
