"""The observables of MLIP MD through the real snakemake, on the finished .test campaign."""

import json
import re
import shutil

import numpy as np
import pytest
import yaml
from conftest import BIN, run, snakemake

from almomd import layout
from almomd.data.frames import read_frames
from almomd.data.trajectories import read_trajectories
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.observables.anharmonicity import Harmonic
from almomd.observables.measure import OBSERVABLES, measure

pytestmark = pytest.mark.workflow

CONDITIONS = {0: "600 K", 1: "900 K"}


def verdict(root, iteration, condition):
    path = layout.path(layout.OBSERVABLES, root, iteration=iteration, condition=condition)
    return json.loads(path.read_text())


def test_the_reference_md_keeps_every_step_with_velocities(campaign):
    config = yaml.safe_load((campaign / "config.yaml").read_text())
    for condition in CONDITIONS:
        dynamics = read_trajectories(
            layout.path(layout.REFERENCE_DYNAMICS, campaign, condition=condition)
        )
        assert len(dynamics) == 2  # heldout.trajectories_per_condition
        frames = read_frames(layout.path(layout.REFERENCE_MD, campaign, condition=condition))
        equilibration = config["heldout"]["equilibration_steps"]
        for index, traj in enumerate(dynamics):
            assert traj.timestep == 2.0 and traj.name == f"reference c{condition}-t{index}"
            # the kept held-out frames are states of the kept trajectory, labels and all
            kept = [a for a in frames if a.info["al_trajectory"] == f"c{condition}-t{index}"]
            assert len(kept) == 2
            for atoms in kept:
                state = int(atoms.info["al_step"]) - equilibration
                # (extxyz keeps 8 decimals)
                np.testing.assert_allclose(traj.positions[state], atoms.positions, atol=1e-6)
                np.testing.assert_allclose(traj.forces[state], atoms.get_forces(), atol=1e-6)
                assert traj.energies[state] == pytest.approx(atoms.get_potential_energy())
            # velocities are the MD's: the displacement of one step, to first order
            moved = (traj.positions[1:] - traj.positions[:-1]) / traj.timestep
            mean = 0.5 * (traj.velocities[1:] + traj.velocities[:-1])
            assert np.abs(moved - mean).max() < 0.1 * np.abs(mean).max()


def test_every_iteration_judges_its_md_at_every_condition(campaign):
    rows = json.loads((campaign / "results" / "status.json").read_text())
    harmonic = Harmonic.load(layout.path(layout.HARMONIC, campaign, system="cu"))
    for row in rows:
        observed = row["observables"]
        assert sorted(observed) == sorted(CONDITIONS.values())
        for condition, label in CONDITIONS.items():
            found = observed[label]
            assert set(OBSERVABLES) <= set(found)
            assert all(found[name]["agree"] in (True, False, None) for name in OBSERVABLES)
            # the verdict is what its kept trajectories give, measured again
            i = row["iteration"]
            members = read_trajectories(
                layout.path(layout.OBSERVABLE_MD, campaign, iteration=i, condition=condition)
            )
            assert len(members) == 2  # one per member (K=2 x M=1)
            reference = read_trajectories(
                layout.path(layout.REFERENCE_DYNAMICS, campaign, condition=condition)
            )
            again, _ = measure(members, reference, harmonic, blocks=4)
            for name in ("rdf", "vdos", "msd", "sigma_a"):
                assert again[name]["agree"] == found[name]["agree"], (i, label, name)
                for part, values in again[name]["parts"].items():
                    for key in ("distance", "value", "reference"):
                        if key in values:
                            assert values[key] == pytest.approx(found[name]["parts"][part][key])


def test_each_member_drives_its_own_trajectory(campaign):
    models = sorted((campaign / "results" / "iter_1" / "models").glob("member_*.nequip.zip"))
    members = read_trajectories(
        layout.path(layout.OBSERVABLE_MD, campaign, iteration=1, condition=0)
    )
    for model, traj in zip(models, members, strict=True):
        assert traj.name == "member " + model.name.removeprefix("member_").split(".")[0]
        alone = EnsembleCalculator([model])
        for state in (0, len(traj) // 2, len(traj) - 1):
            atoms = traj.atoms(state)
            atoms.calc = alone
            np.testing.assert_allclose(atoms.get_forces(), traj.forces[state], atol=1e-4)
    assert not np.allclose(members[0].positions[-1], members[1].positions[-1])


def test_a_lost_observable_is_made_again_the_same_and_nothing_else(campaign, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(campaign, root)
    before = verdict(root, 1, 0)
    lost = layout.OBSERVABLES.format(iteration=1, condition=0)
    layout.path(layout.OBSERVABLE_CURVES, root, iteration=1, condition=0).unlink()
    (root / lost).unlink()
    # found before any job runs, with the way back: request it by name
    refused = snakemake(root, "--cores", "2")
    assert refused.returncode != 0
    assert f"{lost} is missing, but results/iter_1/decision.json was made from it" in (
        refused.stderr
    )
    assert f"snakemake --cores N {lost}" in refused.stderr
    result = snakemake(root, "--cores", "2", lost)
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", console, re.MULTILINE))
    assert ran == {"observables"}, ran
    assert verdict(root, 1, 0) == before  # seeded: the same trajectories, the same verdict
    result = snakemake(root, "--cores", "2")  # the campaign is whole again
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    ran = set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", console, re.MULTILINE))
    assert ran <= {"decide", "write_status", "write_report", "all"}, ran


def test_a_campaign_stops_only_when_the_named_observables_agree(campaign, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(campaign, root)
    config = yaml.safe_load((root / "config.yaml").read_text())
    config["convergence"] = {"force_rmse": None, "uncertain_fraction": None,
                             "observables": ["rdf"]}  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(root, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    decision = json.loads(layout.current_decision(root, 1).read_text())
    agree = [verdict(root, 1, c)["observables"]["rdf"]["agree"] for c in CONDITIONS]
    assert decision["converged"] == all(a is True for a in agree)
    for c, label in CONDITIONS.items():
        word = {True: "agrees", False: "disagrees", None: "has no verdict"}[agree[c]]
        assert f"rdf at {label} {word}" in decision["reason"]


def test_almomd_md_measures_any_iterations_observables(campaign, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(campaign, root)
    result = run(
        [BIN / "almomd", "md", "--observables", "--iteration", "0", "--configfile",
         root / "config.yaml"], root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "observables of iteration 0 at 900 K: rdf" in result.stdout
    for condition in CONDITIONS:
        found = json.loads(
            (root / layout.PRODUCTION_OBSERVABLES / "iter_0" / f"condition_{condition}.json")
            .read_text()
        )  # fmt: skip
        # the workflow's own seeds: the same member trajectories, the same verdict
        assert found == verdict(campaign, 0, condition)
