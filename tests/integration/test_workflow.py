"""End to end: the real snakemake command on the .test campaign (Cu, EMT, 2 iterations)."""

import json
import math
import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from ase.calculators.emt import EMT
from conftest import (
    BIN,
    REPO,
    assert_labels_equal,
    copy_test_config,
    load_test_config,
    snakemake,
    write_emt_frames,
)

from almomd.data.frames import frame_ids, read_frames
from almomd.settings.sections import Settings

pytestmark = pytest.mark.workflow


def iteration_dirs(workdir):
    return sorted((workdir / "results").glob("iter_*"), key=lambda p: int(p.name.split("_")[1]))


def labeled_frames(iteration_dir):
    files = sorted((iteration_dir / "labels").glob("labeled_*.extxyz"))
    return [a for f in files for a in read_frames(f)]


def test_campaign_ran_every_iteration(campaign):
    decisions = [json.loads((d / "decision.json").read_text()) for d in iteration_dirs(campaign)]
    assert [d["iteration"] for d in decisions] == [0, 1]
    assert [d["stop"] for d in decisions] == [False, True]
    assert "max_iterations" in decisions[-1]["reason"]


def test_walkers_go_on_from_the_previous_iterations_last_good_frame(campaign):
    """exploration.continue_walkers (the default): iteration 1's walker starts at iteration
    0's last frame that passed every check, with its velocities, on the new ensemble."""
    first, second = iteration_dirs(campaign)[:2]
    walkers = sorted((first / "explore").glob("walker_*.extxyz"))
    assert walkers
    for path in walkers:
        before = read_frames(path)
        after = read_frames(second / "explore" / path.name)
        trusted = [a for a in before if a.info["md_trusted"]]
        start = after[0]
        assert start.info["md_continued_from"] == trusted[-1].info["al_id"]
        np.testing.assert_allclose(start.positions, trusted[-1].positions, atol=1e-8)
        np.testing.assert_allclose(start.get_momenta(), trusted[-1].get_momenta(), atol=1e-8)
        assert start.info["md_elapsed_fs"] == trusted[-1].info["md_elapsed_fs"] > 0
        # the new ensemble's predictions, not the old ones
        assert not np.allclose(start.arrays["ens_forces"], trusted[-1].arrays["ens_forces"])


def test_training_sets_grow_by_exactly_the_labels(campaign):
    dirs = iteration_dirs(campaign)
    for previous, current in zip(dirs, dirs[1:], strict=False):
        before = read_frames(previous / "train.extxyz")
        added = labeled_frames(previous)
        after = read_frames(current / "train.extxyz")
        assert len(added) > 0
        assert frame_ids(after) == frame_ids(before) + frame_ids(added)
        for old, new in zip(before + added, after, strict=True):
            assert new.get_potential_energy() == pytest.approx(old.get_potential_energy())
            np.testing.assert_allclose(new.get_forces(), old.get_forces())


def test_labels_equal_direct_emt_and_carry_provenance(campaign):
    first = iteration_dirs(campaign)[0]
    walkers = {
        a.info["al_id"]: a
        for f in sorted((first / "explore").glob("walker_*.extxyz"))
        for a in read_frames(f)
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
            a for f in (directory / "explore").glob("walker_*.extxyz") for a in read_frames(f)
        ]
        decision = json.loads((directory / "decision.json").read_text())
        metrics = json.loads((directory / "eval" / "metrics.json").read_text())
        failed = [a for f in (directory / "labels").glob("failed_*.extxyz") for a in read_frames(f)]
        assert row["n_train"] == len(read_frames(directory / "train.extxyz"))
        assert row["n_candidates"] == len(walker_frames)
        assert row["n_selected"] == len(read_frames(directory / "selection" / "selected.extxyz"))
        assert row["n_labeled"] == len(labeled_frames(directory))
        assert row["n_failed"] == len(failed)
        assert row["test_force_rmse"] == pytest.approx(metrics["force_rmse"])
        assert row["test_energy_rmse"] == pytest.approx(metrics["energy_rmse"])
        assert row["mean_force_uncertainty"] == pytest.approx(metrics["mean_u_force_mean"])
        assert row["converged"] == decision["converged"]
        assert row["reason"] == decision["reason"]
        held = json.loads((directory / "eval" / "heldout.json").read_text())
        assert row["heldout_source"] == decision["heldout_source"] == "reference_md"
        assert row["heldout_covers_conditions"] is True
        assert row["heldout_n"] == held["n_frames"] == 8
        assert row["heldout_force_rmse"] == pytest.approx(held["force_rmse"])
        assert row["heldout_force_rmse_ci"] == pytest.approx(held["force_rmse_ci"])
        assert row["heldout_energy_rmse"] == pytest.approx(held["energy_rmse"])
        assert row["spearman_heldout"] == pytest.approx(held["spearman"]["force_max"]["rho"])
        assert "held-out force RMSE" in row["reason"] and "n=8 frames" in row["reason"]
    assert rows[0]["n_labeled"] == rows[0]["n_selected"] > 0
    assert rows[1]["n_train"] == rows[0]["n_train"] + rows[0]["n_labeled"]


def test_heldout_error_equals_direct_evaluation(campaign):
    """The held-out frames are EMT MD at the exploration temperatures, and the figures hold."""
    from almomd.ensemble.calculator import EnsembleCalculator

    frames = read_frames(campaign / "results" / "data" / "heldout.extxyz")
    assert_labels_equal(frames, frames, EMT, atol=1e-6)
    assert sorted({a.info["al_condition"] for a in frames}) == ["600 K", "900 K"]
    assert {a.info["al_source"] for a in frames} == {"reference_md"}
    for directory in iteration_dirs(campaign):
        models = sorted(str(p) for p in (directory / "models").glob("*.nequip.zip"))
        ensemble = EnsembleCalculator(models)
        errors, energy_errors = [], []
        for atoms in frames:
            work = atoms.copy()
            work.calc = ensemble
            reference = atoms.copy()
            reference.calc = EMT()
            errors.append(work.get_forces() - reference.get_forces())
            energy_errors.append(
                (work.get_potential_energy() - reference.get_potential_energy()) / len(atoms)
            )
        held = json.loads((directory / "eval" / "heldout.json").read_text())
        rmse = float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
        assert held["force_rmse"] == pytest.approx(rmse, rel=1e-5)
        assert held["energy_rmse"] == pytest.approx(
            np.sqrt(np.mean(np.square(energy_errors))), rel=1e-4
        )
        low, high = held["force_rmse_ci"]
        assert low < rmse < high
        assert set(held["per_condition"]) == {"600 K", "900 K"}
        assert {"energy", "force_mean", "force_max"} <= set(held["spearman"])
        assert {v["n"] for v in held["spearman"].values()} == {8}


def test_random_baseline_frames_are_tagged_random(campaign, tmp_path, monkeypatch):
    from almomd import stages
    from almomd.settings.schema import load_config

    monkeypatch.chdir(campaign)
    config = load_config(campaign / "config.yaml")
    config["selection"]["method"] = "random"
    base = campaign / "results" / "iter_0"
    stages.select_frames(
        Settings.from_config(config),
        iteration=0,
        walker_files=sorted(str(p) for p in (base / "explore").glob("walker_*.extxyz")),
        test_table=str(base / "eval" / "test_predictions.csv"),
        heldout_summary=str(base / "eval" / "heldout.json"),
        heldout_table=str(base / "eval" / "heldout_predictions.csv"),
        out_frames=str(tmp_path / "selected.extxyz"),
        out_table=str(tmp_path / "candidates.csv"),
        out_summary=str(tmp_path / "summary.json"),
    )
    chosen = read_frames(tmp_path / "selected.extxyz")
    assert len(chosen) == config["selection"]["max_frames"]
    assert {a.info["al_source"] for a in chosen} == {"random"}
    assert {a.info["al_condition"] for a in chosen} <= {"600 K", "900 K"}


def test_without_heldout_frames_the_test_set_is_used_and_flagged(campaign, tmp_path, monkeypatch):
    """audit without audit labels (or source test_set): the test set, never training frames."""
    from almomd import stages
    from almomd.settings.schema import load_config

    monkeypatch.chdir(campaign)
    base = campaign / "results"
    models = sorted(str(p) for p in (base / "iter_1" / "models").glob("*.nequip.zip"))
    labels = sorted(str(p) for p in (base / "iter_0" / "labels").glob("labeled_*.extxyz"))
    test = read_frames(base / "data" / "test.extxyz")
    for source, frame_files in (("audit", labels), ("test_set", [])):
        config = load_config(campaign / "config.yaml")
        config["heldout"]["source"] = source
        summary = stages.evaluate_heldout(
            Settings.from_config(config), iteration=1, model_files=models,
            test_file=str(base / "data" / "test.extxyz"), frame_files=frame_files,
            out_summary=str(tmp_path / "heldout.json"), out_table=str(tmp_path / "table.csv"),
        )  # fmt: skip
        assert (summary["source"], summary["covers_conditions"]) == ("test_set", False)
        table = pd.read_csv(tmp_path / "table.csv")
        assert list(table["al_id"]) == frame_ids(test)


def one_by_one(models, atoms):
    """ALmoMD's way: energies, forces and stresses from one calculator per member."""
    from nequip.integrations.ase import NequIPCalculator

    energies, forces, stresses = [], [], []
    for path in models:
        single = atoms.copy()
        single.calc = NequIPCalculator._from_saved_model(
            path, chemical_species_to_atom_type_map=True
        )
        energies.append(single.get_potential_energy())
        forces.append(single.get_forces())
        stresses.append(single.get_stress())
    return np.array(energies), np.array(forces), np.array(stresses)


def assert_agrees(ensemble, atoms, models):
    """The ensemble's members, mean and stress equal one calculator per member (1e-5)."""
    work = atoms.copy()
    work.calc = ensemble
    energy, forces, stress = work.get_potential_energy(), work.get_forces(), work.get_stress()
    energies, member_forces, stresses = one_by_one(models, atoms)
    np.testing.assert_allclose(ensemble.results["member_energies"], energies, rtol=1e-5)
    np.testing.assert_allclose(
        ensemble.results["member_forces"], member_forces, rtol=1e-5, atol=1e-6
    )
    assert energy == pytest.approx(np.mean(energies), rel=1e-5)
    np.testing.assert_allclose(forces, np.mean(member_forces, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stress, np.mean(stresses, axis=0), rtol=1e-5, atol=1e-7)
    assert np.abs(stress).max() > 1e-4
    assert len(set(np.round(energies, 6))) == len(models), "members should differ"


def iteration_models(campaign):
    return sorted(str(p) for p in (campaign / "results" / "iter_1" / "models").glob("*.zip"))


def rattled_test_frame(campaign, seed=3):
    atoms = read_frames(campaign / "results" / "data" / "test.extxyz")[0]
    atoms.rattle(0.05, seed=seed)  # non-zero stress and forces
    return atoms


@pytest.mark.parametrize("batched", [True, False])
def test_ensemble_mean_equals_members_one_by_one(campaign, batched):
    from almomd.ensemble.calculator import EnsembleCalculator

    models = iteration_models(campaign)
    ensemble = EnsembleCalculator(models, batched=batched)
    assert ensemble.batched == batched
    if batched:
        assert ensemble._batched.shared_geometry
        assert ensemble._batched.fused == 2  # both layers' tensor products fused
    assert_agrees(ensemble, rattled_test_frame(campaign), models)
    if batched:  # the out-of-place scatter was scoped to the mapped pass
        from almomd.ensemble.batched import _scatter

        namespaces = ensemble._batched._scatter_namespaces
        assert namespaces and all(n["scatter"] is not _scatter for n in namespaces)


def test_compiled_ensemble_equals_members_one_by_one(campaign):
    from almomd.ensemble.calculator import EnsembleCalculator

    models = iteration_models(campaign)
    ensemble = EnsembleCalculator(models, compile=True)
    atoms = rattled_test_frame(campaign)
    assert_agrees(ensemble, atoms, models)
    batched = ensemble._batched
    assert batched.compiled, "fell back to eager"
    capacity = batched.edge_capacity
    n_edges = ensemble._to_data(atoms)["edge_index"].shape[1]
    assert n_edges < capacity <= 1.11 * n_edges + 1  # padded with far images
    dense = atoms.copy()  # 10 % shorter: a new shell of neighbours, a larger capacity
    dense.set_cell(dense.cell * 0.9, scale_atoms=True)
    assert_agrees(ensemble, dense, models)
    assert batched.compiled and batched.edge_capacity > capacity
    # e3nn's tensor products through the out-of-place scatter, compiled: the path in
    # which a scatter into a fresh torch.zeros gave forces 0.3 eV/A off
    from almomd.ensemble.batched import BatchedMembers

    ensemble._batched = BatchedMembers(
        [m.model for m in ensemble.members], compile=True, r_max=batched.r_max, fuse=False
    )
    assert ensemble._batched.fused == 0
    ensemble.reset()
    assert_agrees(ensemble, atoms, models)
    assert ensemble._batched.compiled, "fell back to eager"


def test_members_with_different_geometry_share_none(campaign):
    from almomd.ensemble.batched import BatchedMembers
    from almomd.ensemble.calculator import EnsembleCalculator

    ensemble = EnsembleCalculator(iteration_models(campaign), batched=False)
    networks = [member.model for member in ensemble.members]
    buffer = dict(networks[1].named_buffers())
    name = next(n for n in buffer if n.endswith("bessel_weights"))
    buffer[name].mul_(1.01)  # member 1 encodes edge lengths differently
    batched = BatchedMembers(networks)
    assert not batched.shared_geometry
    data = ensemble._to_data(rattled_test_frame(campaign))
    energies, forces, _, _ = batched(data)
    reference, reference_forces, *_ = ensemble._one_by_one(data)
    np.testing.assert_allclose(energies.numpy(), reference, rtol=1e-5)
    np.testing.assert_allclose(forces.numpy(), reference_forces, rtol=1e-5, atol=1e-6)
    shared = BatchedMembers([networks[0], networks[0]])
    assert shared.shared_geometry


def test_finished_campaign_has_nothing_left_to_do(campaign):
    result = snakemake(campaign, "--cores", "1", "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_a_trained_model_as_ground_truth_labeler(campaign, tmp_path):
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.labeling.single_points import label_frames

    model = sorted((campaign / "results" / "iter_1" / "models").glob("*.nequip.zip"))[0]
    frames = read_frames(campaign / "results" / "iter_0" / "selection" / "selected.extxyz")
    settings = LabelerSettings(
        name="almomd.ensemble:EnsembleCalculator", parameters={"model_paths": [str(model)]}
    )
    n_ok, n_failed = label_frames(
        frames, Labeler(settings), tmp_path / "ok.extxyz", tmp_path / "bad.extxyz"
    )
    assert (n_ok, n_failed) == (len(frames), 0)
    direct = EnsembleCalculator([model])
    for atoms, frame in zip(read_frames(tmp_path / "ok.extxyz"), frames, strict=True):
        reference = frame.copy()
        reference.calc = direct
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy())
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-6)


def test_report_shows_the_campaign(campaign):
    from almomd.layout import FIGURES

    out = campaign / "results" / "report"
    for name in FIGURES:
        content = (out / name).read_bytes()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 5000, name
    summary = json.loads((out / "report.json").read_text())
    rows = json.loads((campaign / "results" / "status.json").read_text())
    assert summary["labels_used"] == rows[-1]["n_train"]
    assert summary["final_force_rmse"] == pytest.approx(rows[-1]["test_force_rmse"])
    held = json.loads((campaign / "results" / "iter_1" / "eval" / "heldout.json").read_text())
    assert summary["spearman_latest"] == pytest.approx(held["spearman"]["force_max"]["rho"])
    assert summary["final_heldout_force_rmse"] == pytest.approx(rows[-1]["heldout_force_rmse"])
    assert summary["heldout_n"] == 8 and summary["heldout_covers_conditions"]
    markdown = (out / "report.md").read_text()
    assert "Held-out frames: reference_md, n = 8." in markdown
    assert "![Calibration" in markdown and "(calibration.png)" in markdown
    decision = json.loads((campaign / "results" / "iter_1" / "decision.json").read_text())
    for rule, quality in decision["thresholds"].items():  # precision and recall per threshold
        assert f"| iter_1 | {rule} | {quality['threshold']:.4g} |" in markdown
        assert quality["recall"] is None or 0 <= quality["recall"] <= 1
    assert "![Exploration](exploration.png)" in markdown
    for row in rows:  # one line per iteration in the overview and in the decisions table
        line = f"\n| {row['iteration']} | {row['n_train']} | {row['n_candidates']} |"
        assert f"{line} {row['n_selected']} |" in markdown
        assert f"\n| iter_{row['iteration']} |" in markdown
    assert "<img src='parity.png'" in (out / "report.html").read_text()
    forces = np.loadtxt(campaign / "results" / "iter_1" / "eval" / "test_forces.txt")
    rmse = float(np.sqrt(((forces[:, 1] - forces[:, 0]) ** 2).mean()))
    metrics = json.loads((campaign / "results" / "iter_1" / "eval" / "metrics.json").read_text())
    assert rmse == pytest.approx(metrics["force_rmse"], rel=1e-4)


def test_snakemake_report_bundles_the_figures(campaign, tmp_path):
    target = tmp_path / "report.zip"
    result = snakemake(campaign, "--cores", "1", "--report", str(target))
    assert result.returncode == 0, result.stderr[-2000:]
    import zipfile

    names = zipfile.ZipFile(target).namelist()
    assert any(n.endswith("learning_curve.png") for n in names)
    assert any(n.endswith("report.html") for n in names)


def test_production_md_from_the_command_line(campaign):
    out = campaign / "results" / "production" / "cli.extxyz"
    # torch writes its cache directory into the environment of a process that
    # compiled (this one, in an earlier test); a job starts without it
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    result = subprocess.run(
        [str(BIN / "almomd"), "md", "-d", str(campaign), "--configfile", "config.yaml",
         "--steps", "40", "--interval", "10", "--temperature", "600", "-o", str(out),
         "--compile"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["iteration"] == 1  # nothing converged: the last iteration
    assert "step 40/40 (100.0%)" in result.stderr  # progress
    assert "compiling the ensemble" in result.stderr
    assert "torch.compile failed" not in result.stderr
    assert any((campaign / ".cache" / "torch_compile").iterdir())  # the campaign's cache
    table = pd.read_csv(campaign / "results" / "iter_1" / "eval" / "heldout_predictions.csv")
    u = table["u_force_max"]  # the threshold comes from the held-out frames
    assert summary["threshold"] == pytest.approx(u.mean() + 3 * u.std(ddof=0))
    frames = read_frames(out)
    assert len(frames) == summary["frames"] == 5
    assert [a.info["al_step"] for a in frames] == [0, 10, 20, 30, 40]
    above = [a.info["above_threshold"] for a in frames]
    assert sum(above) == summary["above_threshold"]
    for atoms in frames:
        assert (atoms.info["u_force_max"] > summary["threshold"]) == atoms.info["above_threshold"]
        assert np.isfinite(atoms.arrays["ens_forces"]).all()
    assert json.loads(out.with_suffix(".json").read_text()) == summary


def test_production_md_stops_or_goes_on_at_the_threshold(campaign, tmp_path):
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.exploration.md import MDSettings
    from almomd.exploration.production import model_files, run_production

    models = model_files(campaign, 1, [(0, 0), (1, 0)])  # .test: K=2, M=1
    start = read_frames(campaign / "results" / "data" / "test.extxyz")[0]
    settings = MDSettings("nvt_langevin", 600.0, 2.0, 0.02, 20, 5, 1.0)
    calc = EnsembleCalculator(models)
    stopped = run_production(
        start, calc, settings, 0.0, True, tmp_path / "a.extxyz", np.random.default_rng(1)
    )
    assert (stopped["reason"], stopped["frames"], stopped["first_above_step"]) == (
        "max_uncertainty",
        1,
        0,
    )
    full = run_production(
        start, calc, settings, 0.0, False, tmp_path / "b.extxyz", np.random.default_rng(1)
    )
    assert (full["reason"], full["frames"], full["above_threshold"]) == ("completed", 5, 5)


def test_production_md_snakemake_target(campaign, tmp_path):
    from conftest import snakemake_command

    extra = tmp_path / "production.yaml"
    extra.write_text("production:\n  steps: 20\n  log_interval: 10\n  temperature: 450\n")
    command = snakemake_command(campaign, "--cores", "1", "results/production/md.extxyz")
    index = command.index("--configfile")
    command[index + 2 : index + 2] = [str(extra)]  # both config files, the second on top
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((campaign / "results" / "production" / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["iteration"] == 1
    frames = read_frames(campaign / "results" / "production" / "md.extxyz")
    assert [a.info["al_step"] for a in frames] == [0, 10, 20]
    log = campaign / "logs" / "production" / "production_md.log"
    assert "production MD: iteration 1" in log.read_text()


def test_warm_start_begins_from_the_previous_weights(campaign, tmp_path):
    from almomd.ensemble.calculator import EnsembleCalculator, predict
    from almomd.settings.schema import validate_config
    from almomd.training.trainer import train_member

    config = validate_config(yaml.safe_load((campaign / "config.yaml").read_text()), campaign)
    # scratch settings that would move the weights; the warm-start ones must win
    config["training"].update(warm_start=True, warm_start_epochs=1, warm_start_learning_rate=1e-7)
    previous = sorted((campaign / "results" / "iter_0" / "models").glob("*.nequip.zip"))[0]
    out = tmp_path / "warm.nequip.zip"
    train_file = campaign / "results" / "iter_1" / "train.extxyz"
    train_member(
        Settings.from_config(config),
        train_file,
        ["Cu"],
        11,
        12,
        tmp_path / "run",
        out,
        init_model=previous,
    )
    rendered = yaml.safe_load((tmp_path / "run" / "nequip.yaml").read_text())
    assert rendered["training_module"]["model"]["package_path"] == str(previous.resolve())
    assert (rendered["max_epochs"], rendered["learning_rate"]) == (1, 1e-7)
    test = read_frames(campaign / "results" / "data" / "test.extxyz")
    before, after = EnsembleCalculator([previous]), EnsembleCalculator([out])
    for atoms in test[:3]:  # one epoch at a tiny learning rate: the same model
        e0, f0, _ = predict(before, atoms)
        e1, f1, _ = predict(after, atoms)
        assert e1 == pytest.approx(e0, abs=1e-3 * len(atoms))
        np.testing.assert_allclose(f1, f0, atol=1e-3)


def test_members_trained_in_one_process_equal_one_process_each(tmp_path):
    """almomd.training.nequip_run: one process for several members gives the same models."""
    import zipfile

    from almomd.settings.schema import validate_config
    from almomd.training.template import render_template, template_variables
    from almomd.training.trainer import train_member

    workdir = copy_test_config(tmp_path / "campaign")
    config = validate_config(yaml.safe_load((workdir / "config.yaml").read_text()), workdir)
    config["training"]["max_epochs"] = 2
    train_file = write_emt_frames(tmp_path / "train.extxyz", 12)
    alone = [tmp_path / f"alone_{m}.nequip.zip" for m in range(2)]
    for m, out in enumerate(alone):  # the train_member way: a process per member
        times = train_member(
            Settings.from_config(config),
            train_file,
            ["Cu"],
            30 + m,
            40 + m,
            tmp_path / f"a{m}",
            out,
        )
        assert times["import_s"] > 0 and times["train_s"] > 0 and times["package_s"] > 0
    together = []
    for m in range(2):
        run_dir = tmp_path / f"t{m}"
        run_dir.mkdir()
        variables = template_variables(
            Settings.from_config(config), train_file, ["Cu"], 30 + m, 40 + m
        )
        rendered = render_template(None, variables)
        (run_dir / "nequip.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
        together.append((run_dir, run_dir / "member.nequip.zip"))
    args = [str(a) for run_dir, out in together for a in (run_dir, "nequip.yaml", out)]
    result = subprocess.run([str(BIN / "python"), "-m", "almomd.training.nequip_run", *args],
                            capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    second = json.loads((together[1][0] / "times.json").read_text())
    assert second["import_s"] == 0.0  # the imports were paid by the first member

    def weights(path):
        with zipfile.ZipFile(path) as archive:
            return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()
                    if name.endswith(".storage")}  # fmt: skip

    for out, (_, packaged) in zip(alone, together, strict=True):
        assert weights(out) and weights(out) == weights(packaged)
    assert weights(alone[0]) != weights(alone[1])  # different seeds, different members


def test_early_stopping_stops_when_the_validation_loss_stops_falling(tmp_path):
    from almomd.settings.schema import validate_config
    from almomd.training.trainer import train_member

    workdir = copy_test_config(tmp_path / "campaign")
    config = validate_config(yaml.safe_load((workdir / "config.yaml").read_text()), workdir)
    # a step too small to change a float32 weight: the validation loss never improves
    config["training"].update(max_epochs=20, patience=2, learning_rate=1e-12)
    write_emt_frames(tmp_path / "train.extxyz", 10)
    run_dir = tmp_path / "run"
    train_member(
        Settings.from_config(config),
        tmp_path / "train.extxyz",
        ["Cu"],
        1,
        2,
        run_dir,
        tmp_path / "m.nequip.zip",
    )
    metrics = pd.concat(pd.read_csv(f) for f in run_dir.glob("hydra/csv/*/metrics.csv"))
    assert metrics["epoch"].max() + 1 == 3  # the first epoch and `patience` without gain
    assert "max_epochs=20` reached" not in (run_dir / "hydra" / "train.log").read_text()


def test_audit_labels_are_held_out_truth_never_trained_on(tmp_path):
    """heldout.source audit: frames drawn per walker, labeled with the selected ones, judged on."""
    workdir = copy_test_config(tmp_path / "audit")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["heldout"] = {"source": "audit", "audit_per_walker": 2}
    config["training"]["max_epochs"] = 3
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = iteration_dirs(workdir)
    labeled = labeled_frames(first)
    audit = [a for a in labeled if a.info["al_source"] == "audit"]
    assert len(audit) == 2 * 2  # two walkers
    assert sorted(a.info["al_walker"] for a in audit) == [0, 0, 1, 1]
    assert_labels_equal(audit, audit, EMT, atol=1e-6)
    trained = set(frame_ids(read_frames(second / "train.extxyz")))
    assert trained.isdisjoint(frame_ids(audit))
    assert set(frame_ids(labeled)) - set(frame_ids(audit)) <= trained
    held = [json.loads((d / "eval" / "heldout.json").read_text()) for d in (first, second)]
    assert (held[0]["source"], held[0]["covers_conditions"]) == ("test_set", False)
    assert (held[1]["source"], held[1]["covers_conditions"], held[1]["n_frames"]) == (
        "audit",
        True,
        4,
    )
    table = pd.read_csv(second / "eval" / "heldout_predictions.csv")
    assert sorted(table["al_id"]) == sorted(frame_ids(audit))
    status = json.loads((workdir / "results" / "status.json").read_text())
    assert [row["n_audit"] for row in status] == [4, 4]
    assert status[0]["heldout_covers_conditions"] is False
    assert "does not represent the exploration conditions" not in status[1]["reason"]


def test_production_md_by_novelty_of_an_iteration_without_its_reference_is_refused(
    campaign, tmp_path, monkeypatch
):
    """An iteration of a version before the novelty reference: the metric that needs it
    is refused with the fix; force_max runs (without novelty)."""
    from almomd import stages
    from almomd.errors import ConfigError
    from almomd.settings.schema import validate_config

    root = tmp_path / "old"
    shutil.copytree(campaign / "results", root / "results",
                    ignore=shutil.ignore_patterns("train_*", "run_*"))  # fmt: skip
    (root / "results" / "iter_1" / "models" / "novelty.npz").unlink()
    shutil.copy(REPO / ".test" / "cu.xyz", root / "cu.xyz")
    monkeypatch.chdir(root)  # a step runs in its campaign's directory

    def production(metric, iteration=1):
        config = load_test_config()
        config["uncertainty"] = {"metric": metric}
        config["production"] = {"steps": 10, "log_interval": 5, "iteration": iteration}
        settings = Settings.from_config(validate_config(config, REPO / ".test"))
        out = tmp_path / f"{metric}.extxyz"
        return stages.production_md(
            settings, root=str(root), out=str(out), out_summary=str(out.with_suffix(".json"))
        )

    with pytest.raises(ConfigError, match="uncertainty.metric: force_max, or choose a later"):
        production("force_max_novelty")
    # iteration 0's reference was fitted without the error model (the campaign's force_max)
    with pytest.raises(ConfigError, match="force_error_max needs the error model"):
        production("force_error_max", iteration=0)
    assert production("force_max")["frames"] == 3
