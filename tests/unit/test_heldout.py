"""Reference MD with the labeler itself: decorrelated, labeled frames at one condition."""

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import assert_labels_equal

from almomd.data.frames import frame_ids, read_frames
from almomd.evaluation import heldout
from almomd.exploration.md import MDSettings
from almomd.labeling.labelers import Labeler, LabelerSettings


def run(tmp_path, equilibration, between, n=3):
    settings = MDSettings("nvt_langevin", 600.0, 2.0, 0.02, 0, 1, 1.0)
    return heldout.reference_md(
        bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2)),
        Labeler(LabelerSettings(name="emt")),
        settings,
        heldout.Condition(0, 600.0, None, "cu"),
        n, equilibration, between, np.random.default_rng(0),
        str(tmp_path / f"ref_{equilibration}.extxyz"),
    )  # fmt: skip


def test_frames_are_kept_after_equilibration_every_steps_between(tmp_path):
    frames = run(tmp_path, equilibration=6, between=4)
    assert [a.info["al_step"] for a in frames] == [6, 10, 14]
    assert frame_ids(frames) == ["ref-c0-s000006", "ref-c0-s000010", "ref-c0-s000014"]
    assert {a.info["al_condition"] for a in frames} == {"600 K"}
    assert_labels_equal(frames, frames, EMT, atol=1e-6)
    written = read_frames(tmp_path / "ref_6.extxyz")
    assert frame_ids(written) == frame_ids(frames)


def test_without_equilibration_the_first_frame_is_the_start(tmp_path):
    frames = run(tmp_path, equilibration=0, between=5)
    assert [a.info["al_step"] for a in frames] == [0, 5, 10]
