"""One campaign, whatever its directory: continuing, recovering and reporting in all three forms.

A campaign runs in the clone's root with the repository's Snakefile
(``repository``), in a directory made by ``almomd init`` (``init``: an
``include:`` of the installed workflow) or by ``almomd init --module``
(``module``: the workflow as a Snakemake module). Each test works on a copy of
the finished .test campaign (2 iterations, stopped at ``max_iterations``) in
each form, so that the forms cannot drift apart again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, CampaignForm

from almomd import layout, lineage

pytestmark = pytest.mark.workflow


def jobs_run(console: str) -> list[tuple[str, int | None]]:
    """Each job snakemake started (its rule and iteration) in the console's order."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) \w+:)", console):
        head = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block)
        if head:
            wildcards = re.search(r"wildcards: .*?(?:iteration|next_iteration)=(\d+)", block)
            jobs.append((head.group(1), int(wildcards.group(1)) if wildcards else None))
    return jobs


def ok(result: subprocess.CompletedProcess) -> str:
    console = result.stdout + result.stderr
    assert result.returncode == 0, console[-4000:]
    return console


def test_raising_max_iterations_runs_exactly_the_next_iteration(campaign_form):
    form = campaign_form
    form.edit(lambda c: c.update(max_iterations=3))
    status = form.status()
    assert status.returncode == 0
    assert "the stop rules changed since iteration 1 was decided (max_iterations: 2 -> 3)" in (
        status.stdout
    )
    # the budget plans the same: iteration 1's labels and iteration 2, from the config
    # and from snakemake's own dry run
    plans = []
    for how in ([], ["--snakemake"]):
        plans.append(json.loads(form.almomd("budget", "--json", *how).stdout))
    for plan in plans:
        assert set(plan["remaining"]["iterations"]) == {"1", "2", "campaign"}
        plan["remaining"]["total"]["jobs"].pop(form.target_rule, None)  # named as the Snakefile
        plan["remaining"]["total"]["jobs"].pop("all", None)  # names it
    assert plans[0]["remaining"]["total"] == plans[1]["remaining"]["total"]
    member_jobs = [("subset", 2)] * 2 + [("train_member", 2)] * 2
    iteration_2 = [
        ("label_batch", 1), ("label_batch", 1), ("merge_labels", 2), *member_jobs,
        ("fit_novelty", 2), ("evaluate", 2), ("evaluate_heldout", 2), ("explore", 2),
        ("explore", 2), ("observables", 2), ("observables", 2), ("select_frames", 2),
        ("decide", 2), ("write_status", None),
        ("write_report", None), (form.target_rule, None),
    ]  # fmt: skip
    if form.form == "init":  # the README's way: the whole iteration runs
        console = ok(form.snakemake("--cores", "2"))
        assert sorted(jobs_run(console), key=str) == sorted(
            [("redecide", 1), *iteration_2], key=str
        )
        assert form.decision(2)["reason"].startswith("stopped: max_iterations 3 reached")
        assert [row["iteration"] for row in json.loads(form.status("--json").stdout)] == [0, 1, 2]
        assert "campaign: finished at iteration 2" in form.status().stdout
    else:  # the decision is made again, and then Snakemake plans exactly those jobs
        decided = ok(form.snakemake("--cores", "1", layout.decision_file(1, 2)))
        assert [job for job in jobs_run(decided) if job[0] in ("redecide", "decide")] == [
            ("redecide", 1)
        ]
        planned = jobs_run(ok(form.snakemake("--cores", "1", "--dry-run")))
        assert sorted(planned, key=str) == sorted(iteration_2, key=str)
    assert form.decision(1)["stop"] is False
    assert form.decision(1)["redecision"] == {"number": 2, "changes": ["max_iterations: 2 -> 3"]}
    assert json.loads((form.root / layout.DECISION.format(iteration=1)).read_text())["stop"]
    if form.form == "init":
        again = ok(form.snakemake("--cores", "1", "--dry-run"))
        assert "Nothing to be done" in again, re.findall(
            r"(?:rule|checkpoint) .*|reason: .*", again
        )


def test_loosening_a_target_stops_and_tightening_it_goes_on(campaign_form):
    form = campaign_form
    """The campaign stopped at max_iterations 2 (held-out force RMSE about 0.3 eV/A, target
    0.05). With 3 iterations and a target of 10 it is converged at iteration 1: only the
    decision is made again. Tightening the target back makes iteration 1 go on."""
    loose = {"force_rmse": 10.0, "uncertain_fraction": None}
    form.edit(lambda c: c.update(max_iterations=3, convergence=loose))
    console = ok(form.snakemake("--cores", "1"))
    assert {rule for rule, _ in jobs_run(console)} == {
        "redecide", "write_status", "write_report",
        form.target_rule,
    }  # fmt: skip
    assert form.decision(1)["converged"] is True
    assert "campaign: finished at iteration 1" in form.status().stdout
    form.edit(lambda c: c.update(convergence={**loose, "force_rmse": 0.05}))
    assert "convergence.force_rmse: 10.0 -> 0.05" in form.status().stdout
    # the new decision alone (the whole campaign would go on to run iteration 2)
    ok(form.snakemake("--cores", "1", layout.REDECISION.format(iteration=1, redecision=3)))
    decision = form.decision(1)
    assert decision["stop"] is False and decision["redecision"]["number"] == 3
    assert "campaign: not finished: iteration 2 runs next" in form.status().stdout
    # the decision of iteration 0 is history, made once
    assert "redecision" not in form.decision(0)


def test_a_deleted_iteration_is_planned_again(campaign_form):
    form = campaign_form
    shutil.rmtree(form.root / "results" / "iter_1")
    status = form.status()
    assert status.returncode == 0
    assert "campaign: not finished: iteration 1 runs next" in status.stdout
    dry = ok(form.snakemake("--cores", "1", "--dry-run"))
    planned = jobs_run(dry)
    assert ("merge_labels", 1) in planned and ("decide", 1) in planned
    assert planned.count(("train_member", 1)) == 2
    assert not [job for job in planned if job[1] == 0]
    shutil.rmtree(form.root / "results" / "iter_0")
    planned = jobs_run(ok(form.snakemake("--cores", "1", "--dry-run")))
    # iteration 0 from the kept initial labels
    assert ("initial_datasets", None) in planned and ("decide", 0) in planned
    assert not [job for job in planned if job[0] in ("label_initial_batch", "reference_md")]


def test_a_dry_run_writes_and_deletes_nothing(campaign_form):
    form = campaign_form
    status = form.root / layout.STATUS
    status.write_text("[{")
    listing = sorted(str(p) for p in form.root.rglob("*") if ".snakemake" not in p.parts)
    dry = ok(form.snakemake("--cores", "1", "--dry-run"))
    assert "results/status.json cannot be read (truncated?): a run writes it again" in dry
    assert status.read_text() == "[{"
    assert sorted(str(p) for p in form.root.rglob("*") if ".snakemake" not in p.parts) == listing
    ok(form.snakemake("--cores", "1"))
    assert [row["iteration"] for row in json.loads(status.read_text())] == [0, 1]


def cut_last_frame(path: Path) -> None:
    """Cut the last frame of a write-protected extxyz file, at a frame's end."""
    lines = path.read_text().splitlines(keepends=True)
    n_atoms = int(lines[0])
    os.chmod(path, 0o644)
    path.write_text("".join(lines[: len(lines) - (n_atoms + 2)]))


def test_a_label_file_cut_short_is_damage_found_before_any_job(campaign_form):
    form = campaign_form
    labels = form.root / layout.LABELED.format(iteration=0, batch=0)
    cut_last_frame(labels)
    train = form.root / layout.TRAIN.format(iteration=1)
    intact = train.read_bytes()
    status = form.status()
    assert status.returncode == 1
    assert f"DAMAGED: {layout.LABELED.format(iteration=0, batch=0)} holds 1 of the 2" in (
        status.stdout
    )
    refused = form.snakemake("--cores", "1")
    assert refused.returncode != 0
    assert "holds 1 of the 2 frames sent to labeling" in refused.stdout + refused.stderr
    assert not jobs_run(refused.stdout + refused.stderr)
    assert train.read_bytes() == intact  # snakemake deleted nothing


def test_following_the_advice_for_a_cut_label_file_finishes_the_campaign(campaign, tmp_path):
    form = CampaignForm(campaign, tmp_path / "init", "init")
    cut_last_frame(form.root / layout.LABELED.format(iteration=0, batch=0))
    status = form.status()
    advice = status.stdout[status.stdout.index("or delete ") + len("or delete ") :]
    targets = advice.split(" so that")[0].split()
    assert targets == [
        layout.LABELED.format(iteration=0, batch=0),
        layout.FAILED.format(iteration=0, batch=0),
        layout.ITERATION.format(iteration=1),
    ]
    for target in targets:
        path = form.root / target
        if path.is_dir():
            shutil.rmtree(path)
        else:
            os.chmod(path, 0o644)
            path.unlink()
    console = ok(form.snakemake("--cores", "2"))
    ran = jobs_run(console)
    assert ("label_batch", 0) in ran and ("merge_labels", 1) in ran
    assert not [job for job in ran if job[1] == 0 and job[0] != "label_batch"]
    status = form.status()
    assert status.returncode == 0 and "campaign: finished at iteration 1" in status.stdout
    assert lineage.count_frames(form.root / layout.LABELED.format(iteration=0, batch=0)) == 2


def test_the_labelers_failures_before_the_first_iteration_are_in_the_status(campaign, tmp_path):
    """A labeler that fails every third call: the initial frames it failed are listed and
    the reference MD redoes its failed steps. One that always gives NaN stops the
    campaign at its check, and the status says why."""
    form = CampaignForm(campaign, tmp_path / "init", "init")
    fresh = form.root.parent / "fresh"
    shutil.copytree(form.root, fresh, ignore=shutil.ignore_patterns("results", "logs"))
    form.root, form.config = fresh, fresh / "config" / "config.yaml"
    shutil.copy(REPO / "tests" / "flaky_labelers.py", fresh / "flaky_labelers.py")
    form.edit(lambda c: c["labeler"].update(name="flaky_labelers:FailsEveryThird"))
    targets = [layout.HELDOUT_SET, layout.TRAIN.format(iteration=0)]
    ok(form.snakemake("--cores", "2", *targets))
    text = form.status().stdout
    assert re.search(r"initial data: \d+ of 30 frames failed to label \(\d+ x SCF did not", text)
    assert re.search(r"reference MD 600 K: \d+ steps the labeler failed were redone", text)
    shutil.rmtree(fresh / "results")
    form.edit(lambda c: c["labeler"].update(name="flaky_labelers:NaNForces"))
    failed = form.snakemake("--cores", "1")
    assert failed.returncode != 0
    status = form.status()
    assert "campaign: not started: a step before the first iteration failed" in status.stdout
    assert "logs/initial/labeler_check.log: RuntimeError: labeler flaky_labelers:NaNForces" in (
        status.stdout
    )
