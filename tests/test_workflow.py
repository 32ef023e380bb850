"""End to end: the real snakemake command on the .test campaign (Cu, EMT, 2 iterations)."""

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest
from ase.calculators.emt import EMT
from conftest import BIN, snakemake

from almomd import data

pytestmark = pytest.mark.workflow


def iteration_dirs(workdir):
    return sorted((workdir / "results").glob("iter_*"), key=lambda p: int(p.name.split("_")[1]))


def labeled_frames(iteration_dir):
    files = sorted((iteration_dir / "labels").glob("labeled_*.extxyz"))
    return [a for f in files for a in data.read_frames(f)]


def test_campaign_ran_every_iteration(campaign):
    decisions = [json.loads((d / "decision.json").read_text()) for d in iteration_dirs(campaign)]
    assert [d["iteration"] for d in decisions] == [0, 1]
    assert [d["stop"] for d in decisions] == [False, True]
    assert "max_iterations" in decisions[-1]["reason"]


def test_training_sets_grow_by_exactly_the_labels(campaign):
    dirs = iteration_dirs(campaign)
    for previous, current in zip(dirs, dirs[1:], strict=False):
        before = data.read_frames(previous / "train.extxyz")
        added = labeled_frames(previous)
        after = data.read_frames(current / "train.extxyz")
        assert len(added) > 0
        assert data.frame_ids(after) == data.frame_ids(before) + data.frame_ids(added)
        for old, new in zip(before + added, after, strict=True):
            assert new.get_potential_energy() == pytest.approx(old.get_potential_energy())
            np.testing.assert_allclose(new.get_forces(), old.get_forces())


def test_labels_equal_direct_emt_and_carry_provenance(campaign):
    first = iteration_dirs(campaign)[0]
    walkers = {
        a.info["al_id"]: a
        for f in sorted((first / "explore").glob("walker_*.extxyz"))
        for a in data.read_frames(f)
    }
    frames = labeled_frames(first)
    assert frames
    for atoms in frames:
        reference = atoms.copy()
        reference.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(
            reference.get_potential_energy(), abs=1e-6
        )
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-6)
        source = walkers[atoms.info["al_id"]]
        assert atoms.info["al_iteration"] == 0
        assert atoms.info["al_source"] == "active"
        assert atoms.info["al_labeler"] == "emt"
        assert atoms.info["al_walker"] == source.info["al_walker"]
        assert atoms.info["al_step"] == source.info["al_step"]
        assert atoms.info["al_uncertainty"] == pytest.approx(source.info["u_force_max"])
        np.testing.assert_allclose(atoms.positions, source.positions)


def test_errors_and_uncertainties_are_finite(campaign):
    for directory in iteration_dirs(campaign):
        metrics = json.loads((directory / "eval" / "metrics.json").read_text())
        for key in ("energy_rmse", "force_rmse", "energy_mae", "force_mae", "mean_u_force_mean"):
            assert math.isfinite(metrics[key]) and metrics[key] >= 0
        assert metrics["n_members"] == 2
        candidates = pd.read_csv(directory / "selection" / "candidates.csv")
        assert np.isfinite(candidates["uncertainty"]).all()
        assert (candidates["probability"].between(0, 1)).all()


def test_status_json_agrees_with_files(campaign):
    result = subprocess.run(
        [str(BIN / "almomd"), "status", "--json", "-d", str(campaign)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(result.stdout)
    assert json.loads((campaign / "results" / "status.json").read_text()) == rows
    assert [r["iteration"] for r in rows] == [0, 1]
    for row, directory in zip(rows, iteration_dirs(campaign), strict=True):
        walker_frames = [
            a for f in (directory / "explore").glob("walker_*.extxyz") for a in data.read_frames(f)
        ]
        decision = json.loads((directory / "decision.json").read_text())
        metrics = json.loads((directory / "eval" / "metrics.json").read_text())
        failed = [
            a for f in (directory / "labels").glob("failed_*.extxyz") for a in data.read_frames(f)
        ]
        assert row["n_train"] == len(data.read_frames(directory / "train.extxyz"))
        assert row["n_candidates"] == len(walker_frames)
        assert row["n_selected"] == len(
            data.read_frames(directory / "selection" / "selected.extxyz")
        )
        assert row["n_labeled"] == len(labeled_frames(directory))
        assert row["n_failed"] == len(failed)
        assert row["test_force_rmse"] == pytest.approx(metrics["force_rmse"])
        assert row["test_energy_rmse"] == pytest.approx(metrics["energy_rmse"])
        assert row["mean_force_uncertainty"] == pytest.approx(metrics["mean_u_force_mean"])
        assert row["converged"] == decision["converged"]
        assert row["reason"] == decision["reason"]
    assert rows[0]["n_labeled"] == rows[0]["n_selected"] > 0
    assert rows[1]["n_train"] == rows[0]["n_train"] + rows[0]["n_labeled"]


def test_ensemble_mean_equals_members_one_by_one(campaign):
    from nequip.integrations.ase import NequIPCalculator

    from almomd.ensemble import EnsembleCalculator

    models = sorted(
        str(p) for p in (campaign / "results" / "iter_1" / "models").glob("*.nequip.zip")
    )
    atoms = data.read_frames(campaign / "results" / "data" / "test.extxyz")[0]
    ensemble = EnsembleCalculator(models)
    work = atoms.copy()
    work.calc = ensemble
    energy, forces = work.get_potential_energy(), work.get_forces()
    energies, member_forces = [], []
    for path in models:
        single = atoms.copy()
        single.calc = NequIPCalculator._from_saved_model(
            path, chemical_species_to_atom_type_map=True
        )
        energies.append(single.get_potential_energy())
        member_forces.append(single.get_forces())
    assert energy == pytest.approx(np.mean(energies), rel=1e-5)
    np.testing.assert_allclose(forces, np.mean(member_forces, axis=0), rtol=1e-5, atol=1e-6)
    assert len(set(np.round(energies, 6))) == len(models), "members should differ"


def test_finished_campaign_has_nothing_left_to_do(campaign):
    result = snakemake(campaign, "--cores", "1", "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_trained_model_as_ground_truth_labeler(campaign, tmp_path):
    from almomd.calculators import Labeler, LabelerSettings
    from almomd.ensemble import EnsembleCalculator
    from almomd.labeling import label_frames

    model = sorted((campaign / "results" / "iter_1" / "models").glob("*.nequip.zip"))[0]
    frames = data.read_frames(campaign / "results" / "iter_0" / "selection" / "selected.extxyz")
    settings = LabelerSettings(
        name="almomd.ensemble:EnsembleCalculator", parameters={"model_paths": [str(model)]}
    )
    n_ok, n_failed = label_frames(
        frames, Labeler(settings), tmp_path / "ok.extxyz", tmp_path / "bad.extxyz"
    )
    assert (n_ok, n_failed) == (len(frames), 0)
    direct = EnsembleCalculator([model])
    for atoms, frame in zip(data.read_frames(tmp_path / "ok.extxyz"), frames, strict=True):
        reference = frame.copy()
        reference.calc = direct
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy())
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-6)
