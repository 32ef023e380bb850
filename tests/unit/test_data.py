"""Training-set bookkeeping: merge, provenance, split, subsample."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from almomd.data.frames import (
    DataFileError,
    frame_ids,
    labeled_copy,
    merge,
    min_interatomic_distance,
    read_frames,
    split_test_set,
    subsample,
    write_frames,
)
from almomd.settings.sections import Settings


def labeled(n, source="active", prefix="a"):
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=i)
        atoms.info.update(al_iteration=1, al_walker=i % 2, al_step=10 * i, al_uncertainty=0.1 * i)
        calc = EMT()
        frames.append(
            labeled_copy(
                atoms,
                calc.get_potential_energy(atoms),
                calc.get_forces(atoms),
                al_id=f"{prefix}{i}",
                al_source=source,
                al_labeler="emt",
            )
        )
    return frames


def test_merge_keeps_every_frame_once_with_provenance(tmp_path):
    train, new = labeled(5, "initial", "init-"), labeled(3, "active", "it1-")
    write_frames(tmp_path / "train.extxyz", train)
    write_frames(tmp_path / "new.extxyz", new)
    merged = merge(read_frames(tmp_path / "train.extxyz"), read_frames(tmp_path / "new.extxyz"))
    write_frames(tmp_path / "merged.extxyz", merged)
    back = read_frames(tmp_path / "merged.extxyz")
    assert frame_ids(back) == frame_ids(train) + frame_ids(new)
    for original, read in zip(train + new, back, strict=True):
        assert read.info["al_source"] == original.info["al_source"]
        assert read.info["al_labeler"] == "emt"
        assert read.info["al_step"] == original.info["al_step"]
        assert read.info["al_walker"] == original.info["al_walker"]
        assert read.info["al_uncertainty"] == pytest.approx(original.info["al_uncertainty"])
        assert read.get_potential_energy() == pytest.approx(original.get_potential_energy())
        np.testing.assert_allclose(read.get_forces(), original.get_forces(), atol=1e-7)
        np.testing.assert_allclose(read.positions, original.positions, atol=1e-7)


def test_merge_refuses_duplicates():
    frames = labeled(3)
    with pytest.raises(ValueError, match="duplicated frame ids"):
        merge(frames, frames[:1])


def test_empty_file_round_trip(tmp_path):
    write_frames(tmp_path / "empty.extxyz", [])
    assert read_frames(tmp_path / "empty.extxyz") == []


def test_split_and_subsample_are_seeded_partitions():
    frames = labeled(10)
    train, test = split_test_set(frames, 3, np.random.default_rng(4))
    assert len(test) == 3
    assert sorted(frame_ids(train + test)) == sorted(frame_ids(frames))
    again, _ = split_test_set(frames, 3, np.random.default_rng(4))
    assert frame_ids(again) == frame_ids(train)
    sub = subsample(train, 0.5, np.random.default_rng(5))
    assert len(sub) == 4
    assert set(frame_ids(sub)) <= set(frame_ids(train))
    with pytest.raises(ValueError, match="lower test_set.size"):
        split_test_set(frames, 10, np.random.default_rng(0))


def test_min_interatomic_distance_uses_minimum_image():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    assert min_interatomic_distance(atoms) == pytest.approx(3.6 / np.sqrt(2))


def test_user_supplied_initial_and_test_files(tmp_path, monkeypatch):
    import yaml
    from conftest import REPO

    from almomd import stages
    from almomd.settings.schema import validate_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cu.xyz").write_text((REPO / ".test" / "cu.xyz").read_text())
    user = labeled(6)
    for atoms in user:
        atoms.info.clear()  # a plain labeled file, no almomd provenance
    write_frames(tmp_path / "mine.extxyz", user)
    write_frames(tmp_path / "my_test.extxyz", user[:2])
    raw = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    raw["system"]["structure"] = "cu.xyz"
    raw["initial_data"] = {"file": "mine.extxyz"}
    raw["test_set"] = {"file": "my_test.extxyz"}
    config = validate_config(raw, tmp_path)
    stages.initial_datasets(
        Settings.from_config(config),
        candidates_file=None,
        labeled_files=[],
        failed_files=[],
        out_train="train.extxyz",
        out_test="test.extxyz",
    )
    train, test = read_frames("train.extxyz"), read_frames("test.extxyz")
    assert frame_ids(train) == [f"user-{i:04d}" for i in range(6)]
    assert frame_ids(test) == ["test-0000", "test-0001"]
    assert all(a.info["al_source"] == "user" for a in train + test)
    assert train[3].get_potential_energy() == pytest.approx(user[3].get_potential_energy())


def test_empty_text_in_info_is_refused_instead_of_corrupting_the_next_key(tmp_path):
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = EMT()
    frame = labeled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces())
    assert frame.info["al_source"] == "unknown"  # defaults are never empty
    write_frames(tmp_path / "ok.extxyz", [frame])
    read = read_frames(tmp_path / "ok.extxyz")[0]
    assert read.get_potential_energy() == pytest.approx(frame.get_potential_energy())
    frame.info["note"] = ""
    with pytest.raises(ValueError, match=r"empty text in info \['note'\]"):
        write_frames(tmp_path / "bad.extxyz", [frame])


def test_users_aimd_becomes_the_heldout_set_and_audit_frames_stay_out_of_training(tmp_path):
    from almomd import stages
    from almomd.evaluation import heldout

    user = labeled(5, source="whatever")
    for atoms in user:
        atoms.info["al_condition"] = "600 K"
    write_frames(tmp_path / "aimd.extxyz", user)
    bulk("Cu", "fcc", a=3.6, cubic=True).write(tmp_path / "cu.xyz")
    config = {
        "heldout": {"source": "file", "file": str(tmp_path / "aimd.extxyz")},
        "systems": [
            {"name": "bulk", "structure": str(tmp_path / "cu.xyz")},
            {"name": "vacancy", "from": "bulk", "remove": [0]},
        ],
    }
    out = str(tmp_path / "heldout.extxyz")
    stages.heldout_dataset(Settings.from_config(config), files=[], out=out)
    frames = read_frames(tmp_path / "heldout.extxyz")
    assert frame_ids(frames) == [f"heldout-{i:04d}" for i in range(5)]
    assert {a.info["al_source"] for a in frames} == {"heldout"}
    assert {a.info["al_condition"] for a in frames} == {"600 K"}
    assert {a.info["al_system"] for a in frames} == {"bulk"}  # told by composition
    for ours, theirs in zip(frames, user, strict=True):
        np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), atol=1e-7)
    mixed = labeled(3, source="active") + labeled(2, source="audit", prefix="b")
    assert frame_ids(heldout.training_frames(mixed)) == ["a0", "a1", "a2"]
    assert frame_ids(heldout.audit_frames(mixed)) == ["b0", "b1"]


def test_a_truncated_frame_file_is_named_with_the_fix(tmp_path):
    path = tmp_path / "labeled_0.extxyz"
    write_frames(path, [bulk("Cu", "fcc", a=3.6, cubic=True) for _ in range(2)])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))  # the last frame lost its last two atoms
    with pytest.raises(DataFileError, match="labeled_0.extxyz cannot be read .* delete it"):
        read_frames(path)


def test_labels_that_do_not_add_up_name_their_files(tmp_path):
    from almomd.stages.data import _gather_labels

    frames = [bulk("Cu", "fcc", a=3.6, cubic=True) for _ in range(3)]
    for i, atoms in enumerate(frames):
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.info["al_id"] = f"it0-w0-s{i:06d}"
    labeled, failed = tmp_path / "labeled_0.extxyz", tmp_path / "failed_0.extxyz"
    copies = [labeled_copy(a, a.get_potential_energy(), a.get_forces()) for a in frames]
    write_frames(labeled, copies)
    failed.write_text("")
    settings = Settings.from_config({"labeler": {"name": "emt", "min_success_fraction": 0.5}})
    assert len(_gather_labels(settings, 3, [str(labeled)], [str(failed)], "labels")) == 3
    with pytest.raises(RuntimeError, match=r"4 frames sent to labeling but 3 came back in .*"
                       r"labeled_0.extxyz.*failed_0.extxyz"):  # fmt: skip
        _gather_labels(settings, 4, [str(labeled)], [str(failed)], "labels")
