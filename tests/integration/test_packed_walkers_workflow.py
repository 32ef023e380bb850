"""Walkers in one pass with the real NequIP ensemble, in the workflow, and killed mid-pack."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from ase.build import bulk
from conftest import copy_test_config, snakemake, snakemake_command, test_config_with

from almomd.data.frames import read_frames
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.exploration.md import MDSettings, run_walker
from almomd.exploration.packed import run_together

pytestmark = pytest.mark.workflow


def md(**changes):
    base = dict(thermostat="nvt_langevin", temperature=600.0, timestep=2.0, friction=0.02,
                steps=40, log_interval=5, min_distance=1.0)  # fmt: skip
    return MDSettings(**(base | changes))


#: another temperature; NPT; one that stops at its first check above a ceiling
WALKERS = [md(), md(temperature=900.0, thermostat="npt", pressure=1.0), md(max_uncertainty=1e-9)]


def test_walkers_in_one_pass_follow_their_trajectories_alone(campaign, tmp_path):
    models = sorted((campaign / "results" / "iter_1" / "models").glob("*.nequip.zip"))
    novelty = campaign / "results" / "iter_1" / "models" / "novelty.npz"
    start = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))

    def walk(index, calculator, kind):
        out = tmp_path / f"{kind}_{index}.extxyz"
        frames, reason = run_walker(start, calculator, WALKERS[index], index,
                                    np.random.default_rng(index), out)  # fmt: skip
        return reason

    ensemble = EnsembleCalculator([str(m) for m in models], novelty=novelty)
    assert ensemble.batched
    alone = [walk(i, ensemble, "alone") for i in range(3)]
    together = run_together(ensemble, [lambda c, i=i: walk(i, c, "packed") for i in range(3)])
    assert together == alone == ["completed", "completed", "max_uncertainty"]
    for i in range(3):
        a, b = (read_frames(tmp_path / f"{kind}_{i}.extxyz") for kind in ("alone", "packed"))
        assert len(a) == len(b) and (i == 2) == (len(a) < 9)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose(y.positions, x.positions, rtol=0, atol=1e-6)
            np.testing.assert_allclose(y.cell, x.cell, rtol=0, atol=1e-6)
            np.testing.assert_allclose(y.arrays["novelty"], x.arrays["novelty"], atol=1e-5)
            for key in ("ens_energy", "u_force_max", "u_force_max_novelty"):
                assert y.info[key] == pytest.approx(x.info[key], rel=1e-5, abs=1e-7), key


def test_the_compiled_pass_over_several_structures_agrees_with_each_alone(campaign):
    """torch.compile over batched graphs (padded edges of graph 0): each structure's
    energies, forces and stress as from the eager pass of it alone."""
    models = [str(m) for m in sorted((campaign / "results" / "iter_1" / "models").glob("*.zip"))]
    rng = np.random.default_rng(3)
    structures = []
    for repeat, a in ((2, 3.61), (2, 3.55), (3, 3.61)):  # 32, 32 and 108 atoms
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(repeat)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        structures.append(atoms)
    compiled = EnsembleCalculator(models, compile=True)
    together = compiled.results_for(structures)
    assert compiled._batched.compiled, "fell back to eager"
    eager = EnsembleCalculator(models)
    for atoms, found in zip(structures, together, strict=True):
        alone = eager.results_for([atoms])[0]
        for key in ("member_energies", "member_forces", "stress"):
            np.testing.assert_allclose(found[key], alone[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_a_killed_pack_is_redone_alone_on_resume(tmp_path):
    """exploration.walkers_per_job: 2 through snakemake; SIGKILL while the pack runs, then
    the resumed run redoes the pack and keeps the finished training and novelty."""

    def change(config):
        config["max_iterations"] = 1
        config["exploration"] |= {"walkers_per_job": 2, "steps": 200}

    workdir = copy_test_config(tmp_path / "packed")
    (workdir / "config.yaml").write_text(yaml.safe_dump(test_config_with(change)))
    pack_log = workdir / "logs" / "iter_0" / "explore_pack_0.log"
    run = subprocess.Popen(
        snakemake_command(workdir, "--cores", "1"),
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 900
    while not (pack_log.is_file() and "step 10/" in pack_log.read_text()):
        assert run.poll() is None, "the run ended before the pack was under way"
        assert time.monotonic() < deadline, "the pack did not start"
        time.sleep(0.5)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    models = workdir / "results" / "iter_0" / "models"
    kept = {p.name: p.stat().st_mtime_ns for p in models.iterdir()}
    assert "novelty.npz" in kept and len(kept) == 3  # two members and their reference
    assert snakemake(workdir, "--unlock").returncode == 0
    dry = snakemake(workdir, "--cores", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    planned = dry.stdout + dry.stderr
    assert "explore_pack_0" in planned
    assert "train_member" not in planned and "fit_novelty" not in planned
    result = snakemake(workdir, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in models.iterdir()} == kept
    for walker in (0, 1):
        explored = workdir / "results" / "iter_0" / "explore" / f"walker_{walker}.extxyz"
        frames = read_frames(explored)
        assert frames[-1].info["al_step"] == 200 or frames[-1].info["walker_stop"] != "completed"
    assert (workdir / "benchmarks" / "iter_0" / "explore_pack_0.tsv").is_file()
