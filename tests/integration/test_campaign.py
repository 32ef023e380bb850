"""A campaign in its own directory, and what a finished campaign does with changes and damage.

One test uses almomd installed from its wheel (not the clone; the ``installed``
fixture of conftest.py), starts a campaign with
``almomd init`` outside the clone with a labeler module in the campaign
directory, and runs it with the plain ``snakemake`` command. The others work on
copies of the finished .test campaign, in each of its three forms (the clone's
root, ``almomd init`` and ``almomd init --module``; see conftest.CampaignForm):
settings changed after iterations finished, a deleted ensemble member, a missing
label file, a lost training set, bad options.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, REPO, copy_test_config, run, snakemake, snakemake_command

from almomd import layout
from almomd.data.frames import read_frames

pytestmark = pytest.mark.workflow

LABELER = '''\
"""A labeler of this campaign: EMT under another name, found without PYTHONPATH."""
from ase.calculators.emt import EMT


class CampaignEMT(EMT):
    supported_elements = ("Cu", "Ag", "Au")
'''


def test_a_campaign_outside_the_clone_from_the_wheel(tmp_path, installed):
    bin_dir, env = installed
    almomd = bin_dir / "almomd"
    snakemake_ = [bin_dir / "python", "-m", "snakemake"]
    directory = tmp_path / "my campaign"  # a space in the path, too
    init = run([almomd, "init", directory], tmp_path, env)
    assert init.returncode == 0, init.stderr
    for name in ("Snakefile", "config/config.yaml", "slurm/config.yaml"):
        assert (directory / name).is_file(), name
    # the user's own system: the .test campaign with its labeler module, 1 iteration
    shutil.copy(REPO / ".test" / "cu.xyz", directory / "config" / "cu.xyz")
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["system"]["structure"] = "config/cu.xyz"
    config["labeler"]["name"] = "campaign_labeler:CampaignEMT"
    config["max_iterations"] = 1
    config["training"]["max_epochs"] = 3
    (directory / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (directory / "campaign_labeler.py").write_text(LABELER)

    assert run([almomd, "validate"], directory, env).returncode == 0
    plan = run([almomd, "budget", "--cores", "2"], directory, env)
    assert plan.returncode == 0, plan.stderr
    assert "On one machine with 2 cores" in plan.stdout
    # the promised cluster command finds the profile by its name (a dry run here)
    slurm = run([*snakemake_, "--profile", "slurm", "--dry-run"], directory, env)
    assert slurm.returncode == 0, slurm.stdout[-2000:] + slurm.stderr[-2000:]
    assert "train_member" in slurm.stdout

    result = run([*snakemake_, "--cores", "2"], directory, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    labeled = sorted(directory.glob("results/initial/labels/labeled_*.extxyz"))
    frames = [a for path in labeled for a in read_frames(path)]
    assert frames and {a.info["al_labeler"] for a in frames} == {"campaign_labeler:CampaignEMT"}
    status = run([almomd, "status", "--json"], directory, env)
    rows = json.loads(status.stdout)
    assert rows[0]["heldout_force_rmse"] is not None and rows[0]["converged"] is not None
    # production MD labels nothing: it runs without the labeler module
    (directory / "campaign_labeler.py").unlink()
    md = run([almomd, "md", "--steps", "10", "--interval", "5"], directory, env)
    assert md.returncode == 0, md.stderr[-3000:]
    assert json.loads(md.stdout[md.stdout.index("{") :])["frames"] == 3


def edit_config(workdir: Path, change) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    change(config)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))


def test_changed_settings_apply_to_steps_not_run_and_status_says_so(campaign_form):
    form = campaign_form
    form.edit(lambda c: c["selection"].update(max_frames=5))
    dry = form.snakemake("--cores", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr
    status = form.status()
    assert "selection.max_frames: 4 (now 5)" in status.stderr
    rows = json.loads(form.status("--json").stdout)
    assert rows[0]["settings_changed"] == ["selection.max_frames: 4 (now 5)"]


def test_a_setting_that_decides_the_jobs_cannot_change_mid_campaign(campaign_form):
    campaign_form.edit(lambda c: c["ensemble"].update(n_seeds=2))
    result = campaign_form.snakemake("--cores", "1", "--dry-run")
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert "config key ensemble.n_seeds: is 2 but iteration 0 finished with 1" in console


def test_a_deleted_member_is_trained_again_and_nothing_else(campaign_form):
    form, root = campaign_form, campaign_form.root
    member = root / layout.member_file(0, 1, 0)
    walker = root / layout.WALKER.format(iteration=0, walker=0)
    walker_mtime = walker.stat().st_mtime
    member.unlink()
    md = form.almomd("md", "--iteration", "0", "--steps", "5")
    assert md.returncode == 1
    assert "lacks 1 of 2 members" in md.stderr and str(layout.member_file(0, 1, 0)) in md.stderr
    # a plain run does not report the campaign finished, and says how to rebuild
    plain = form.snakemake("--cores", "1", "--dry-run")
    assert plain.returncode != 0
    command = f"snakemake --cores N {layout.member_file(0, 1, 0)}"
    assert command in plain.stdout + plain.stderr
    rebuild = form.snakemake("--cores", "1", layout.member_file(0, 1, 0))
    assert rebuild.returncode == 0, rebuild.stderr[-3000:]
    jobs = rebuild.stdout + rebuild.stderr
    jobs = jobs[jobs.index("Job stats") :].split("\n\n")[0]
    assert "train_member" in jobs and "explore" not in jobs and "evaluate" not in jobs
    assert member.is_file()
    after = form.snakemake("--cores", "1", "--dry-run")
    assert after.returncode == 0 and "Nothing to be done" in after.stdout + after.stderr
    assert walker.stat().st_mtime == walker_mtime


def test_a_campaign_with_a_missing_label_file_is_not_reported_finished(campaign_form):
    missing = campaign_form.root / layout.LABELED.format(iteration=0, batch=1)
    os.chmod(missing, 0o644)
    missing.unlink()
    result = campaign_form.snakemake("--cores", "1", "--dry-run")
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert f"{layout.LABELED.format(iteration=0, batch=1)} is missing" in console
    assert "iter_1/train.extxyz was made from it" in console


def test_command_line_options_are_refused_by_their_own_names(campaign, tmp_path):
    finished = tmp_path / "finished"
    shutil.copytree(campaign, finished, ignore=shutil.ignore_patterns(".snakemake"))
    md = [BIN / "almomd", "md", "--configfile", finished / "config.yaml"]
    result = run([*md, "--temperature", "-300", "--steps", "20"], finished, timeout=120)
    assert result.returncode == 2
    assert "argument --temperature: '-300' is not a number > 0" in result.stderr
    # beyond what the option checks itself: the config key's range, under the option's name
    result = run([*md, "--system", "nope"], finished, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("almomd md: --system 'nope' is not a system of the campaign")
    result = run([*md, "--structure", "nope.xyz"], finished, timeout=120)
    assert result.returncode == 2 and "--structure nope.xyz: no such file" in result.stderr
    result = run([*md, "--iteration", "99"], finished, timeout=120)
    assert result.returncode == 2
    assert "--iteration 99: no trained ensemble; iterations with one: 0, 1" in result.stderr


def job_counts(console: str) -> dict[str, int]:
    """The job counts of snakemake's (first) job stats table."""
    table = console[console.index("Job stats") :].split("\n\n")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.strip()}


def test_a_lost_training_set_is_remade_on_request_and_nothing_else(campaign_form):
    form, root = campaign_form, campaign_form.root
    trains = [root / layout.TRAIN.format(iteration=i) for i in (0, 1)]
    before = [t.read_bytes() for t in trains]
    walker = root / layout.WALKER.format(iteration=0, walker=0)
    walker_mtime = walker.stat().st_mtime
    # a truncated one is named with the fix, not a traceback
    trains[1].write_bytes(before[1][: len(before[1]) // 2])
    status = form.status()
    assert status.returncode == 1 and "cannot be read" in status.stderr
    assert "Traceback" not in status.stderr
    for train in trains:
        os.chmod(train, 0o644)
        train.unlink()
    refused = form.snakemake("--cores", "1", "--dry-run")
    assert refused.returncode != 0
    first = f"snakemake --cores N {layout.TRAIN.format(iteration=0)}, then"
    assert first in refused.stdout + refused.stderr
    for i in range(len(trains)):
        rebuilt = form.snakemake("--cores", "1", layout.TRAIN.format(iteration=i))
        assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
        ran = job_counts(rebuilt.stdout + rebuilt.stderr)
        assert ran == {"initial_datasets" if i == 0 else "merge_labels": 1, "total": 1}
    assert [t.read_bytes() for t in trains] == before
    after = form.snakemake("--cores", "1", "--dry-run")
    assert after.returncode == 0 and "Nothing to be done" in after.stdout + after.stderr
    assert walker.stat().st_mtime == walker_mtime


def test_a_key_given_twice_is_refused_before_any_job(campaign_form):
    config = campaign_form.config
    config.write_text(config.read_text() + "max_iterations: 5\n")
    result = campaign_form.snakemake("--cores", "1", "--dry-run")
    assert result.returncode != 0
    assert "key 'max_iterations' is given twice" in result.stdout + result.stderr


FAILING_LABELER = """\
import os

from ase.calculators.emt import EMT


class NeedsEnvironment(EMT):
    def __init__(self, **kwargs):
        if "MYCODE_ROOT" not in os.environ:
            raise RuntimeError("MYCODE_ROOT is not set: export it to the code's directory")
        super().__init__(**kwargs)
"""


def test_a_failing_step_shows_its_own_error_on_the_console(tmp_path):
    workdir = copy_test_config(tmp_path / "run")
    (workdir / "needs_env.py").write_text(FAILING_LABELER)
    edit_config(workdir, lambda c: c["labeler"].update(name="needs_env:NeedsEnvironment"))
    env = {k: v for k, v in os.environ.items() if k != "MYCODE_ROOT"}
    result = subprocess.run(
        snakemake_command(workdir, "--cores", "1"),
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode != 0
    console = result.stdout + result.stderr
    assert "almomd: RuntimeError:" in console and "MYCODE_ROOT is not set" in console
    # found by the labeler's check, before any other label, the reference MD or training
    assert "cannot label the campaign's structure" in console
    ran = {p.parent.name for p in (workdir / "benchmarks").rglob("*.tsv")}
    assert not (workdir / "results" / "heldout").exists() and ran <= {"initial"}
    assert not list((workdir / "results").rglob("labeled_*.extxyz"))


def group_processes(pgid: int) -> list[str]:
    """Command lines of the live processes in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped
                continue
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (ProcessLookupError, FileNotFoundError):
            continue
    return found


def test_jobs_of_a_killed_local_controller_are_stopped_as_documented(tmp_path):
    """README, Resuming: after kill -9 of the controller its jobs run on; kill its group."""
    workdir = copy_test_config(tmp_path / "run")
    # started as a shell starts it: the controller leads its own process group
    controller = subprocess.Popen(
        snakemake_command(workdir, "--cores", "2"),
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not any(".snakemake/scripts" in p for p in group_processes(controller.pid)):
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.5)
    os.kill(controller.pid, signal.SIGKILL)
    controller.wait()
    assert any(".snakemake/scripts" in p for p in group_processes(controller.pid))
    os.killpg(controller.pid, signal.SIGTERM)  # kill -- -<pid>
    deadline = time.monotonic() + 60
    while group_processes(controller.pid):
        assert time.monotonic() < deadline, group_processes(controller.pid)
        time.sleep(0.5)
    assert snakemake(workdir, "--unlock").returncode == 0
    dry = snakemake(workdir, "--cores", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
