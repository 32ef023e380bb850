"""A campaign whose labeler fails in three ways: the iterations still complete.

The labeler (``flaky_labelers:Flaky``, a module placed in the campaign directory,
found without PYTHONPATH) raises, returns a NaN force, or writes "SCF run NOT
converged" to its output only, depending on the frame's MD step.
The real snakemake command runs two iterations; then a stricter
``min_success_fraction`` makes the merge stop the workflow with a clear error.
"""

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import copy_test_config, snakemake

from almomd.data.frames import frame_ids, read_frames

pytestmark = pytest.mark.workflow

EXPECTED_TYPE = {0: "RuntimeError", 1: "ValueError", 2: "NotConverged"}


def flaky_mode(atoms):
    return (int(atoms.info["al_step"]) // 5) % 4


@pytest.fixture(scope="module")
def flaky_campaign(tmp_path_factory):
    workdir = copy_test_config(tmp_path_factory.mktemp("flaky"))
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["labeler"] = {
        "name": "flaky_labelers:Flaky",
        "failure_patterns": ["SCF run NOT converged"],
        "min_success_fraction": 0.1,
        "n_batches": 2,
    }
    # consecutive frames (every failure mode): no spreading over MD time here
    config["selection"].update(
        shift=-3.0, max_frames=8, min_time_separation=0, min_frame_distance=0
    )
    config["training"]["max_epochs"] = 4
    config["exploration"]["steps"] = 40
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # the labeler module lives in the campaign directory, found without PYTHONPATH
    shutil.copy(Path(__file__).parents[1] / "flaky_labelers.py", workdir)
    result = snakemake(workdir, "--cores", "2")
    if result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return workdir


def frames_of(directory, pattern):
    return [a for f in sorted(directory.glob(pattern)) for a in read_frames(f)]


def test_failed_frames_are_listed_with_reasons_and_kept_out_of_training(flaky_campaign):
    labels = flaky_campaign / "results" / "iter_0" / "labels"
    selected = read_frames(flaky_campaign / "results/iter_0/selection/selected.extxyz")
    labeled = frames_of(labels, "labeled_*.extxyz")
    failed = frames_of(labels, "failed_*.extxyz")
    assert sorted(frame_ids(labeled + failed)) == sorted(frame_ids(selected))
    assert {flaky_mode(a) for a in failed} == {0, 1, 2}, "every failure mode was exercised"
    for atoms in failed:
        assert atoms.info["fail_type"] == EXPECTED_TYPE[flaky_mode(atoms)]
        assert atoms.info["fail_reason"]
        assert atoms.info["al_labeler"] == "flaky_labelers:Flaky"
        if flaky_mode(atoms) == 2:  # its output, which says why, is kept for inspection
            assert (labels / "calc" / atoms.info["al_id"] / "calc.out").is_file()
    assert all(flaky_mode(a) == 3 for a in labeled) and labeled
    next_train = read_frames(flaky_campaign / "results" / "iter_1" / "train.extxyz")
    ids = set(frame_ids(next_train))
    assert not ids & set(frame_ids(failed))
    assert set(frame_ids(labeled)) <= ids
    assert (flaky_campaign / "results" / "iter_1" / "decision.json").is_file()


def test_too_many_failures_stop_the_workflow_with_a_pointer_to_the_logs(flaky_campaign):
    config_file = flaky_campaign / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["labeler"]["min_success_fraction"] = 0.99
    config_file.write_text(yaml.safe_dump(config))
    result = snakemake(
        flaky_campaign, "--cores", "1", "--forcerun", "merge_labels", "--until", "merge_labels"
    )
    assert result.returncode != 0
    log = (flaky_campaign / "logs" / "iter_1" / "merge_labels.log").read_text()
    assert "labeler.min_success_fraction = 0.99" in log
    assert "failed_0.extxyz" in log and "labeling logs" in log
