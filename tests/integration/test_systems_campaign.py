"""The .test/config-systems.yaml campaign: Cu bulk and a vacancy, one potential, real snakemake."""

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from conftest import BIN, REPO, copy_test_config, snakemake

from almomd.data.frames import read_frames

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def systems_campaign(tmp_path_factory):
    workdir = copy_test_config(tmp_path_factory.mktemp("systems"))
    shutil.copy(REPO / ".test" / "config-systems.yaml", workdir / "config.yaml")
    result = snakemake(workdir, "--cores", "2")
    if result.returncode != 0:
        pytest.fail(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return workdir


def status_rows(workdir):
    result = subprocess.run(
        [str(BIN / "almomd"), "status", "--json", "-d", str(workdir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def iteration(workdir, i):
    return workdir / "results" / f"iter_{i}"


def test_status_reports_each_system(systems_campaign):
    rows = status_rows(systems_campaign)
    assert [r["iteration"] for r in rows] == [0, 1]
    for row in rows:
        assert list(row["systems"]) == ["bulk", "vacancy"]
        held = json.loads(
            (iteration(systems_campaign, row["iteration"]) / "eval/heldout.json").read_text()
        )
        for name, figures in row["systems"].items():
            assert isinstance(figures["n_selected"], int)
            assert figures["heldout_n"] == 4  # one condition each, frames_per_condition 4
            assert figures["heldout_force_rmse"] == pytest.approx(
                held["per_system"][name]["force_rmse"]
            )
            assert np.isfinite(figures["heldout_force_rmse"]) and figures["heldout_force_rmse"] > 0
            assert np.isfinite(figures["error_to_uncertainty"])
        assert sum(f["n_selected"] for f in row["systems"].values()) == row["n_selected"]
    text = subprocess.run(
        [str(BIN / "almomd"), "status", "-d", str(systems_campaign)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "iteration 0, system vacancy: selected" in text


def test_frames_carry_their_system_and_the_vacancy_walker_is_biased(systems_campaign):
    walkers = sorted((iteration(systems_campaign, 0) / "explore").glob("walker_*.extxyz"))
    assert [w.name for w in walkers] == ["walker_0.extxyz", "walker_1.extxyz"]
    bulk, vacancy = (read_frames(w) for w in walkers)
    assert {a.info["al_system"] for a in bulk} == {"bulk"} and {len(a) for a in bulk} == {32}
    assert {a.info["al_system"] for a in vacancy} == {"vacancy"}
    assert {len(a) for a in vacancy} == {31}
    assert {a.info["md_target_temperature"] for a in vacancy} == {800.0}
    assert all(a.info["md_bias_energy"] == 0.0 for a in bulk)
    assert all(a.info["md_bias_energy"] < 0.0 for a in vacancy[1:])
    train = read_frames(iteration(systems_campaign, 0) / "train.extxyz")
    counts = pd.Series([a.info["al_system"] for a in train]).value_counts().to_dict()
    assert counts == {"bulk": 13, "vacancy": 13}  # 16 generated each, 3 each to the test set
    test = read_frames(systems_campaign / "results/data/test.extxyz")
    assert sorted(a.info["al_system"] for a in test) == ["bulk"] * 3 + ["vacancy"] * 3
    later = read_frames(iteration(systems_campaign, 1) / "train.extxyz")
    assert {a.info["al_system"] for a in later} == {"bulk", "vacancy"}  # labels keep it
    for atoms in later[len(train) :]:
        assert atoms.info["al_system"] == ("vacancy" if len(atoms) == 31 else "bulk")
    heldout = read_frames(systems_campaign / "results/data/heldout.extxyz")
    assert sorted({(a.info["al_system"], a.info["al_condition"]) for a in heldout}) == [
        ("bulk", "bulk 600 K"),
        ("vacancy", "vacancy 800 K"),
    ]


def test_each_systems_threshold_comes_from_its_own_heldout_frames(systems_campaign):
    for i in (0, 1):
        directory = iteration(systems_campaign, i)
        candidates = pd.read_csv(directory / "selection/candidates.csv")
        held = pd.read_csv(directory / "eval/heldout_predictions.csv")
        thresholds = {}
        for name, rows in candidates.groupby("system"):
            own = held.loc[held["system"] == name, "u_" + rows["metric"].iloc[0]]
            assert set(rows["calibration_scope"]) == {"system"}
            assert rows["calibration_mean"].unique() == pytest.approx([own.mean()])
            assert rows["threshold"].unique() == pytest.approx([own.mean()])  # shift 0
            thresholds[name] = rows["threshold"].iloc[0]
        assert thresholds["bulk"] != pytest.approx(thresholds["vacancy"])
        selected = read_frames(directory / "selection/selected.extxyz")
        for atoms in selected:
            assert atoms.info["al_condition"] == {
                "bulk": "bulk 600 K", "vacancy": "vacancy 800 K"
            }[atoms.info["al_system"]]  # fmt: skip


def test_members_per_job_trains_the_ensemble_in_one_job_and_process(systems_campaign):
    """training.members_per_job: 2: each iteration's two members in one train_pack_0 job."""
    timed = (systems_campaign / "benchmarks" / "iter_1").glob("train_*")
    benchmarks = sorted(p.name for p in timed)
    assert benchmarks == ["train_pack_0.tsv"]
    for i in (0, 1):
        models = sorted(p.name for p in (iteration(systems_campaign, i) / "models").iterdir())
        assert models == ["member_0_0.nequip.zip", "member_1_0.nequip.zip", "novelty.npz"]
        log = (systems_campaign / "logs" / f"iter_{i}" / "train_pack_0.log").read_text()
        assert log.count("running:") == 1 and log.count("trained: {") == 2
        assert "'import_s': 0.0" in log  # the second member paid no imports: one process
    warm = (systems_campaign / "logs" / "iter_1" / "train_pack_0.log").read_text()
    assert warm.count("warm start from results/iter_0/models/member_") == 2
