"""Labeling: the calculator factory, failures to the failed file, resume."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from almomd import data
from almomd.config import ConfigError
from almomd.labeling import batch_of, check_labeler_name, label_frames, make_calculator


def candidates(n):
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=i)
        atoms.info.update(
            al_id=f"it0-w0-s{i:06d}",
            al_iteration=0,
            al_walker=0,
            al_step=i,
            al_uncertainty=0.01 * i,
            al_source="active",
        )
        frames.append(atoms)
    return frames


def test_factory_names():
    assert isinstance(make_calculator("emt"), EMT)
    assert (
        type(make_calculator("ase.calculators.lj:LennardJones", {"sigma": 2.0})).__name__
        == "LennardJones"
    )
    with pytest.raises(ConfigError, match="unknown labeler 'vasp-magic'"):
        check_labeler_name("vasp-magic", "labeler.name")
    with pytest.raises(ConfigError, match="cannot import 'nosuchmodule:X'"):
        check_labeler_name("nosuchmodule:X", "labeler.name")


def test_labels_equal_direct_emt_and_keep_provenance(tmp_path):
    frames = candidates(3)
    n_ok, n_failed = label_frames(
        frames, "emt", {}, False, tmp_path / "ok.extxyz", tmp_path / "bad.extxyz"
    )
    assert (n_ok, n_failed) == (3, 0)
    labeled = data.read_frames(tmp_path / "ok.extxyz")
    for frame, atoms in zip(frames, labeled, strict=True):
        reference = frame.copy()
        reference.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(
            reference.get_potential_energy(), abs=1e-7
        )
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-7)
        assert atoms.info["al_id"] == frame.info["al_id"]
        assert atoms.info["al_labeler"] == "emt"
        assert atoms.info["al_step"] == frame.info["al_step"]
    assert data.read_frames(tmp_path / "bad.extxyz") == []


@pytest.mark.parametrize(
    ("name", "fail_type", "reason"),
    [
        ("calculators:Raising", "RuntimeError", "SCF did not converge"),
        ("calculators:NaNForces", "ValueError", "non-finite"),
    ],
)
def test_failures_go_to_the_failed_file_with_reason(tmp_path, name, fail_type, reason):
    n_ok, n_failed = label_frames(
        candidates(2), name, {}, False, tmp_path / "ok.extxyz", tmp_path / "bad.extxyz"
    )
    assert (n_ok, n_failed) == (0, 2)
    failed = data.read_frames(tmp_path / "bad.extxyz")
    assert [a.info["fail_type"] for a in failed] == [fail_type] * 2
    assert all(reason in a.info["fail_reason"] for a in failed)
    assert data.frame_ids(failed) == data.frame_ids(candidates(2))


def test_partial_failure_keeps_going(tmp_path):
    n_ok, n_failed = label_frames(
        candidates(5),
        "calculators:FailOddFrames",
        {},
        False,
        tmp_path / "ok.extxyz",
        tmp_path / "bad.extxyz",
    )
    assert (n_ok, n_failed) == (3, 2)
    assert [a.info["al_step"] for a in data.read_frames(tmp_path / "ok.extxyz")] == [0, 2, 4]


def test_resume_labels_only_the_rest(tmp_path):
    frames = candidates(4)
    counter = tmp_path / "calls.txt"
    partial = tmp_path / "ok.partial"
    partial.mkdir()
    # a killed earlier run had finished the first two frames
    for atoms in frames[:2]:
        calc = EMT()
        done = data.labeled_copy(
            atoms, calc.get_potential_energy(atoms), calc.get_forces(atoms), al_labeler="emt"
        )
        data.append_frame(partial / "labeled.extxyz", done)
    n_ok, _ = label_frames(
        frames,
        "calculators:Counting",
        {"counter_file": str(counter)},
        False,
        tmp_path / "ok.extxyz",
        tmp_path / "bad.extxyz",
    )
    assert n_ok == 4
    assert counter.read_text().split() == data.frame_ids(frames[2:])
    assert data.frame_ids(data.read_frames(tmp_path / "ok.extxyz")) == data.frame_ids(frames)
    assert not partial.exists()


def test_batches_partition_the_frames():
    frames = candidates(5)
    batches = [batch_of(frames, b, 3) for b in range(3)]
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(i for b in batches for i in data.frame_ids(b)) == sorted(data.frame_ids(frames))
    assert batch_of(frames[:1], 2, 3) == []


def test_launcher_fills_file_based_commands():
    from almomd.labeling import launcher_command, with_launcher

    assert launcher_command("srun", 4) == "srun -n 4"
    assert launcher_command(None, 4) == ""
    parameters = {"command": "{launcher} pw.x -in x.pwi > x.pwo", "kpts": [2, 2, 2],
                  "profile": {"argv": ["{launcher} cp2k.psmp"]}}  # fmt: skip
    filled = with_launcher(parameters, "srun -n 4")
    assert filled["command"] == "srun -n 4 pw.x -in x.pwi > x.pwo"
    assert filled["profile"]["argv"] == ["srun -n 4 cp2k.psmp"]
    assert filled["kpts"] == [2, 2, 2]
    assert with_launcher(parameters, "")["command"] == "pw.x -in x.pwi > x.pwo"
