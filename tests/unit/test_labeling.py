"""Labeling: the calculator factory, failures to the failed file, resume."""

import shlex

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from conftest import assert_labels_equal

from almomd.data.frames import append_frame, frame_ids, labeled_copy, read_frames
from almomd.errors import ConfigError
from almomd.labeling.labelers import Labeler, LabelerSettings, check_labeler_name, deep_merge
from almomd.labeling.single_points import batch_of, check_labeler, label_frames, make_calculator


def label(tmp_path, frames, name, **settings):
    """Label ``frames`` in ``tmp_path``; return the counts."""
    labeler = Labeler(LabelerSettings(name=name, **settings))
    return label_frames(frames, labeler, tmp_path / "ok.extxyz", tmp_path / "bad.extxyz")


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
    n_ok, n_failed = label(tmp_path, frames, "emt")
    assert (n_ok, n_failed) == (3, 0)
    labeled = read_frames(tmp_path / "ok.extxyz")
    assert_labels_equal(labeled, frames, EMT, atol=1e-7)
    for frame, atoms in zip(frames, labeled, strict=True):
        assert atoms.info["al_labeler"] == "emt"
        assert atoms.info["al_step"] == frame.info["al_step"]
    assert read_frames(tmp_path / "bad.extxyz") == []


SILENT = {"failure_patterns": ("SCF run NOT converged",)}


@pytest.mark.parametrize(
    ("name", "settings", "fail_type", "reason"),
    [
        ("flaky_labelers:Raising", {}, "RuntimeError", "SCF did not converge"),
        ("flaky_labelers:NaNForces", {}, "ValueError", "non-finite"),
        ("flaky_labelers:SilentlyUnconverged", SILENT, "NotConverged", "calc.out: SCF run NOT"),
    ],
)
def test_failures_go_to_the_failed_file_with_reason(tmp_path, name, settings, fail_type, reason):
    n_ok, n_failed = label(tmp_path, candidates(2), name, **settings)
    assert (n_ok, n_failed) == (0, 2)
    failed = read_frames(tmp_path / "bad.extxyz")
    assert [a.info["fail_type"] for a in failed] == [fail_type] * 2
    assert all(reason in a.info["fail_reason"] for a in failed)
    assert frame_ids(failed) == frame_ids(candidates(2))


def test_the_labeler_check_names_the_labeler_and_the_reason(tmp_path):
    """One single point before any other label: a broken labeler stops the campaign there."""
    atoms = candidates(1)[0]
    with pytest.raises(RuntimeError) as raised:
        check_labeler(atoms, Labeler(LabelerSettings(name="flaky_labelers:Raising")), tmp_path)
    message = str(raised.value)
    assert "labeler flaky_labelers:Raising cannot label the campaign's structure" in message
    assert "SCF did not converge" in message and "no other frame was labeled" in message
    damped = LabelerSettings(name="flaky_labelers:NeedsDamping", fallback={"mixing": 0.1})
    record = check_labeler(atoms, Labeler(damped), tmp_path / "damped")
    assert "charge sloshing" in record.info["al_first_failure"]
    assert_labels_equal([record], [atoms], EMT, atol=1e-8)


def test_partial_failure_keeps_going(tmp_path):
    n_ok, n_failed = label(tmp_path, candidates(5), "flaky_labelers:FailOddFrames")
    assert (n_ok, n_failed) == (3, 2)
    assert [a.info["al_step"] for a in read_frames(tmp_path / "ok.extxyz")] == [0, 2, 4]


def test_resume_labels_only_the_rest(tmp_path):
    frames = candidates(4)
    counter = tmp_path / "calls.txt"
    partial = tmp_path / "ok.partial"
    partial.mkdir()
    # a killed earlier run had finished the first two frames
    for atoms in frames[:2]:
        calc = EMT()
        done = labeled_copy(
            atoms, calc.get_potential_energy(atoms), calc.get_forces(atoms), al_labeler="emt"
        )
        append_frame(partial / "labeled.extxyz", done)
    n_ok, _ = label(
        tmp_path, frames, "flaky_labelers:Counting", parameters={"counter_file": str(counter)}
    )
    assert n_ok == 4
    assert counter.read_text().split() == frame_ids(frames[2:])
    assert frame_ids(read_frames(tmp_path / "ok.extxyz")) == frame_ids(frames)
    assert not partial.exists()


def test_batches_partition_the_frames():
    frames = candidates(5)
    batches = [batch_of(frames, b, 3) for b in range(3)]
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(i for b in batches for i in frame_ids(b)) == sorted(frame_ids(frames))
    assert batch_of(frames[:1], 2, 3) == []


def test_launcher_fills_file_based_commands():
    from almomd.labeling.labelers import launcher_command, with_launcher

    assert launcher_command("srun", 4) == "srun -n 4"
    assert launcher_command(None, 4) == ""
    # the launcher is quoted word by word: a path with spaces, or a shell character,
    # reaches the shell as one literal word
    quoted = launcher_command("'/opt/my mpi/mpirun' --bind-to=core;x", 2)
    assert quoted == "'/opt/my mpi/mpirun' '--bind-to=core;x' -n 2"
    assert shlex.split(quoted) == ["/opt/my mpi/mpirun", "--bind-to=core;x", "-n", "2"]
    parameters = {"command": "{launcher} pw.x -in x.pwi > x.pwo", "kpts": [2, 2, 2],
                  "profile": {"argv": ["{launcher} cp2k.psmp"]}}  # fmt: skip
    filled = with_launcher(parameters, "srun -n 4")
    assert filled["command"] == "srun -n 4 pw.x -in x.pwi > x.pwo"
    assert filled["profile"]["argv"] == ["srun -n 4 cp2k.psmp"]
    assert filled["kpts"] == [2, 2, 2]
    assert with_launcher(parameters, "")["command"] == "pw.x -in x.pwi > x.pwo"


def test_silent_failure_is_caught_by_the_codes_own_pattern(tmp_path):
    """CP2K only writes "SCF run NOT converged": its built-in pattern catches that output."""
    from almomd.labeling.labelers import NotConverged, check_outputs

    frame = tmp_path / "calc" / "it0-w0-s000001"
    frame.mkdir(parents=True)
    (frame / "cp2k.out").write_text(
        " SCF run converged in 12 steps\n *** SCF run NOT converged ***\n ENERGY| -1.0\n"
    )
    with pytest.raises(NotConverged, match=r"cp2k.out: \*\*\* SCF run NOT converged"):
        check_outputs(frame, LabelerSettings(name="cp2k").patterns)
    # the same output under a code without that pattern passes
    check_outputs(frame, LabelerSettings(name="gpaw").patterns)


def test_a_custom_labeler_needs_its_pattern_in_the_config(tmp_path):
    accepted = label(tmp_path / "a", candidates(1), "flaky_labelers:SilentlyUnconverged")
    assert accepted == (1, 0)  # nothing tells almomd that this output is a failure
    caught = label(tmp_path / "b", candidates(1), "flaky_labelers:SilentlyUnconverged", **SILENT)
    assert caught == (0, 1)
    failed = read_frames(tmp_path / "b" / "bad.extxyz")[0]
    assert failed.info["fail_type"] == "NotConverged"
    assert "SCF run NOT converged" in failed.info["fail_reason"]


def test_fallback_retries_once_with_merged_parameters(tmp_path):
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {
        "a": {"b": 5, "c": 2},
        "d": 3,
    }
    n_ok, n_failed = label(
        tmp_path, candidates(2), "flaky_labelers:NeedsDamping", fallback={"mixing": 0.1}
    )
    assert (n_ok, n_failed) == (2, 0)
    labeled = read_frames(tmp_path / "ok.extxyz")
    assert all("charge sloshing with mixing 0.7" in a.info["al_first_failure"] for a in labeled)
    # a fallback that does not help: both reasons are kept
    (tmp_path / "ok.extxyz").unlink()
    n_ok, n_failed = label(
        tmp_path, candidates(1), "flaky_labelers:NeedsDamping", fallback={"mixing": 0.5}
    )
    assert (n_ok, n_failed) == (0, 1)
    reason = read_frames(tmp_path / "bad.extxyz")[0].info["fail_reason"]
    assert "mixing 0.7" in reason and "with fallback: charge sloshing with mixing 0.5" in reason


def test_frame_directories_are_kept_and_large_files_gzipped(tmp_path):
    frames = candidates(2)
    label(tmp_path, frames, "flaky_labelers:Verbose", compress_above_kb=100)
    for frame_id in frame_ids(frames):
        directory = tmp_path / "calc" / frame_id
        assert (directory / "big.out.gz").is_file()
        assert not (directory / "big.out").exists()
    # failed frames keep their directory even when labeled ones are dropped
    frames = candidates(3)
    label(tmp_path / "b", frames, "flaky_labelers:SilentlyUnconverged", keep_files=False, **SILENT)
    assert sorted(p.name for p in (tmp_path / "b" / "calc").iterdir()) == frame_ids(frames)
    label(tmp_path / "c", frames, "flaky_labelers:Verbose", keep_files=False)
    assert not any((tmp_path / "c" / "calc").iterdir())


def test_stress_only_where_asked_and_provided(tmp_path):
    label(tmp_path, candidates(1), "emt", stress=True)
    labeled = read_frames(tmp_path / "ok.extxyz")[0]
    reference = candidates(1)[0]
    reference.calc = EMT()
    np.testing.assert_allclose(labeled.get_stress(), reference.get_stress(), atol=1e-8)
    # a calculator without stress still labels energy and forces
    label(tmp_path / "lj", candidates(1), "flaky_labelers:NoStress", stress=True)
    assert "stress" not in read_frames(tmp_path / "lj" / "ok.extxyz")[0].calc.results


def test_tblite_scf_failure_then_fallback_equals_a_direct_call(tmp_path):
    from tblite.ase import TBLite

    frames = candidates(1)
    n_ok, n_failed = label(tmp_path / "a", frames, "tblite", parameters={"max_iterations": 1})
    assert (n_ok, n_failed) == (0, 1)
    failed = read_frames(tmp_path / "a" / "bad.extxyz")[0]
    assert failed.info["fail_type"] == "CalculationFailed"
    assert "SCF not converged" in failed.info["fail_reason"]
    n_ok, _ = label(
        tmp_path / "b",
        frames,
        "tblite",
        parameters={"max_iterations": 1},
        fallback={"max_iterations": 250},
    )
    assert n_ok == 1
    labeled = read_frames(tmp_path / "b" / "ok.extxyz")[0]
    assert "CalculationFailed" in labeled.info["al_first_failure"]
    reference = frames[0].copy()
    reference.calc = TBLite(method="GFN1-xTB", verbosity=0)
    assert labeled.get_potential_energy() == pytest.approx(reference.get_potential_energy())
    np.testing.assert_allclose(labeled.get_forces(), reference.get_forces(), atol=1e-7)
