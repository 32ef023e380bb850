"""The budget planner: job counts and hours, from the config and from Snakemake's dry run."""

import json
import re
import shutil
import subprocess

import pytest
import yaml
from conftest import BIN, REPO, copy_test_config, write_emt_frames

from almomd import deploy
from almomd.planning import budget, dry_run
from almomd.planning.jobs import LOCAL_RULES

pytestmark = pytest.mark.workflow  # Snakemake's own dry runs

PROFILE = deploy.slurm_profile()


def almomd_budget(workdir, *args):
    return subprocess.run(
        [str(BIN / "almomd"), "budget", "-d", str(workdir),
         "--configfile", str(workdir / "config.yaml"), *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def expected_by_hand(config, profile):
    """Jobs and hours per iteration from the config and the profile, without Snakemake."""
    resources = profile["set-resources"]
    default_runtime = profile["default-resources"]["runtime"]

    def hours(rule, n):
        spec = resources.get(rule, {})
        runtime_h = spec.get("runtime", default_runtime) / 60
        return n * spec.get("gpu", 0) * runtime_h, n * spec.get("tasks", 1) * runtime_h

    K, M = config["ensemble"]["n_subsets"], config["ensemble"]["n_seeds"]
    W = len(config["exploration"]["temperatures"]) * config["exploration"].get("replicas", 1)
    B = config["labeler"]["n_batches"]
    last = config["max_iterations"] - 1
    C = len(set(config["exploration"]["temperatures"]))  # reference MD: one job per condition
    initial = {"labeler_check": 1, "initial_candidates": 1, "label_initial_batch": B,
               "initial_datasets": 1, "reference_md": C, "heldout_dataset": 1,
               "harmonic_reference": 1}  # fmt: skip
    plan = {"initial": initial}
    for i in range(last + 1):
        jobs = {"subset": K, "train_member": K * M, "fit_novelty": 1, "explore": W,
                "evaluate": 1, "evaluate_heldout": 1, "select_frames": 1, "decide": 1,
                "observables": C}  # fmt: skip
        if i < last:
            jobs |= {"label_batch": B, "merge_labels": 1}
        plan[str(i)] = jobs
    totals = {}
    for key, jobs in plan.items():
        gpu = sum(hours(r, n)[0] for r, n in jobs.items() if r not in LOCAL_RULES)
        cpu = sum(hours(r, n)[1] for r, n in jobs.items() if r not in LOCAL_RULES)
        totals[key] = (gpu, cpu)
    return plan, totals


def test_small_plan_equals_hand_count(tmp_path):
    workdir = copy_test_config(tmp_path / "plan")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["max_iterations"] = 3
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    result = almomd_budget(workdir, "--profile", str(PROFILE), "--json")
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)
    plan, totals = expected_by_hand(config, profile)
    for key, jobs in plan.items():
        row = planned["remaining"]["iterations"][key]
        assert row["jobs"] == dict(sorted(jobs.items())), key
        assert row["gpu_hours"] == pytest.approx(totals[key][0]), key
        assert row["cpu_hours"] == pytest.approx(totals[key][1]), key
    assert planned["remaining"]["iterations"]["campaign"]["jobs"] == {
        "all": 1,
        "write_status": 1,
        "write_report": 1,
    }
    assert planned["done"]["total"]["n_jobs"] == 0
    C = len(set(config["exploration"]["temperatures"]))
    assert planned["remaining"]["partitions"]["gpu"]["gpu_hours"] == pytest.approx(
        sum(t[0] for t in totals.values())
    )
    held = config["heldout"]
    trajectories = held.get("trajectories_per_condition", 2)  # each equilibrates, then frames
    steps = trajectories * held["equilibration_steps"] + held["steps_between"] * (
        held["frames_per_condition"] - trajectories
    )
    n_initial = config["initial_data"]["n_frames"]
    assert planned["labels"] == {
        "selected_per_iteration": config["selection"]["max_frames"],
        "audit_per_iteration": 0,
        "initial": n_initial,
        "reference_md": C * steps,
        "harmonic": 2,  # fcc Cu: the ideal cell and phonopy's one displacement
        "campaign": n_initial + C * steps + 2 + 3 * config["selection"]["max_frames"],
    }
    mapping = planned["campaign"]["rule_partitions"]
    assert mapping["train_member"] == ["gpu"] and mapping["label_batch"] == ["cpu"]
    assert mapping["select_frames"] == ["local"]
    # on the cluster with one job at a time, the wall time is every job's runtime in turn
    assert planned["cluster"]["jobs_at_once"] == profile["jobs"]
    serial = almomd_budget(workdir, "--profile", str(PROFILE), "--jobs", "1", "--json")
    specs, default = profile["set-resources"], profile["default-resources"]["runtime"]
    runtime_h = sum(
        n * specs.get(rule, {}).get("runtime", default) / 60
        for jobs in plan.values() for rule, n in jobs.items() if rule not in LOCAL_RULES
    )  # fmt: skip
    assert json.loads(serial.stdout)["cluster"]["total_wall_hours"] == pytest.approx(runtime_h)
    # a queue wait of 30 min before each job, one job at a time
    waiting = almomd_budget(workdir, "--profile", str(PROFILE), "--jobs", "1", "--queue-wait",
                            "30", "--json")  # fmt: skip
    n_cluster = sum(n for jobs in plan.values() for rule, n in jobs.items()
                    if rule not in LOCAL_RULES)  # fmt: skip
    assert json.loads(waiting.stdout)["cluster"]["total_wall_hours"] == pytest.approx(
        runtime_h + 0.5 * n_cluster
    )
    table = almomd_budget(workdir, "--profile", str(PROFILE), "--queue-wait", "30").stdout
    assert "30 min queue wait" in table
    refused = almomd_budget(workdir, "--profile", str(PROFILE), "--queue-wait", "-5")
    assert refused.returncode == 2 and "argument --queue-wait: '-5'" in refused.stderr
    # the readable table says the same
    table = almomd_budget(workdir, "--profile", str(PROFILE)).stdout
    assert "no early convergence" in table and "no queue wait" in table
    n_jobs = planned["remaining"]["total"]["n_jobs"]
    assert re.search(rf"total\s+{n_jobs}\s", table)


def assert_plans_agree(workdir, *args):
    """The plan from the config equals the one from Snakemake's dry runs, job for job."""
    fast = almomd_budget(workdir, "--json", *args)
    slow = almomd_budget(workdir, "--json", "--snakemake", *args)
    assert fast.returncode == 0, fast.stderr
    assert slow.returncode == 0, slow.stderr
    fast, slow = json.loads(fast.stdout), json.loads(slow.stdout)
    assert fast["jobs_from"] != slow["jobs_from"]
    for key in ("remaining", "done", "campaign", "labels", "expected", "local"):
        assert fast.get(key) == slow.get(key), key
    return fast


def test_plan_from_the_config_equals_snakemakes_dry_run(tmp_path):
    # every kind of job: compiled members, audit frames, replicas, read initial data,
    # a profile in command-line form; and two systems with reference MD
    workdir = copy_test_config(tmp_path / "plan")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["max_iterations"] = 3
    config["training"]["compile"] = True
    config["heldout"] = {"source": "audit", "audit_per_walker": 1}
    config["exploration"]["replicas"] = 2
    config["initial_data"]["file"] = "initial.extxyz"
    write_emt_frames(workdir / "initial.extxyz", 12)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    profile["default-resources"] = [f"{k}={v}" for k, v in profile["default-resources"].items()]
    profile["set-resources"] = [
        f"{rule}:{k}={v}" for rule, values in profile["set-resources"].items()
        for k, v in values.items()
    ]  # fmt: skip
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    plan = assert_plans_agree(workdir, "--profile", str(tmp_path / "profile"), "--cores", "4")
    jobs = plan["campaign"]["iterations"]["0"]["jobs"]
    assert jobs["compile_member"] == 2 and jobs["explore"] == 4
    assert "initial_candidates" not in plan["campaign"]["iterations"]["initial"]["jobs"]
    label_cpu_h = 2 * 120 / 60  # tasks x runtime, per batch
    check_cpu_h = 2 * 30 / 60  # the labeler's check: one single point
    harmonic_cpu_h = 2 * 60 / 60  # the harmonic model's single points (sigma^A)
    assert plan["campaign"]["partitions"]["cpu"]["cpu_hours"] == pytest.approx(
        4 * label_cpu_h + check_cpu_h + harmonic_cpu_h
    )

    systems = copy_test_config(tmp_path / "systems")
    shutil.copy(systems / "config-systems.yaml", systems / "config.yaml")
    plan = assert_plans_agree(systems, "--cores", "2")
    assert plan["campaign"]["iterations"]["initial"]["jobs"]["reference_md"] == 2


def test_packed_members_plan_equals_snakemakes_dry_run(tmp_path):
    """training.members_per_job and exploration.walkers_per_job: a rule per pack, with
    train_member's and explore's profile resources."""
    workdir = copy_test_config(tmp_path / "plan")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["ensemble"] |= {"n_subsets": 2, "n_seeds": 3}
    config["training"]["members_per_job"] = 4  # packs of 4 and 2 members
    config["exploration"] |= {"replicas": 2, "walkers_per_job": 3}  # 4 walkers: 3 and 1
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    plan = assert_plans_agree(workdir, "--profile", str(PROFILE), "--cores", "2")
    iteration = plan["campaign"]["iterations"]["0"]
    assert iteration["jobs"]["train_pack"] == 2 and "train_member" not in iteration["jobs"]
    assert iteration["jobs"]["explore_pack"] == 2 and "explore" not in iteration["jobs"]
    assert plan["campaign"]["rule_partitions"]["train_pack"] == ["gpu"]
    assert plan["campaign"]["rule_partitions"]["explore_pack"] == ["gpu"]
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    member = profile["set-resources"]["train_member"]
    explore = profile["set-resources"]["explore"]
    walkers = 2 * len(config["exploration"]["temperatures"])  # packs of 3 and 1: runtime x 4
    others = 2 * 15 / 60 + walkers * explore["runtime"] / 60  # evaluations and walkers
    conditions = len(config["exploration"]["temperatures"])  # the observables' MD, each
    others += conditions * profile["set-resources"]["observables"]["runtime"] / 60
    assert iteration["gpu_hours"] == pytest.approx((4 + 2) * member["runtime"] / 60 + others)


def test_remaining_budget_drops_by_the_finished_iterations(campaign, tmp_path):
    # the finished .test campaign, with iteration 1 (all but its training set) undone
    workdir = tmp_path / "partial"
    shutil.copytree(campaign, workdir, symlinks=True)
    iteration = workdir / "results" / "iter_1"
    for name in ("subsets", "models", "explore", "eval", "selection", "training"):
        shutil.rmtree(iteration / name)
    (iteration / "decision.json").unlink()
    (workdir / "results" / "status.json").unlink()
    planned = assert_plans_agree(workdir, "--profile", str(PROFILE))
    whole = planned["campaign"]["iterations"]
    remaining = planned["remaining"]["iterations"]
    assert set(remaining) == {"1", "campaign"}
    assert remaining["1"] == whole["1"]
    done = planned["done"]["total"]
    for key in ("n_jobs", "gpu_hours", "cpu_hours"):
        share = sum(whole[k][key] for k in ("initial", "0"))
        assert done[key] == pytest.approx(share)
        assert planned["remaining"]["total"][key] == pytest.approx(
            planned["campaign"]["total"][key] - share
        )


def test_actual_run_times_against_estimates(campaign):
    result = subprocess.run(
        [str(BIN / "almomd"), "budget", "--actual", "--json", "-d", str(campaign),
         "--configfile", str(campaign / "config.yaml"), "--profile", str(PROFILE)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["train_member"]["n_measured"] == 4  # 2 members x 2 iterations
    assert report["train_member"]["estimate_min"] == 120
    assert 0 < report["train_member"]["mean_min"] < 120
    assert report["label_initial_batch"]["n_measured"] == 2


def test_local_plan_without_a_profile(tmp_path):
    workdir = copy_test_config(tmp_path / "plan")
    result = almomd_budget(workdir, "--cores", "2", "--json")
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)
    assert planned["runtimes"] == "the rules' own estimates (no profile)"
    local = planned["local"]
    assert local["cores"] == 2 and local["total_wall_hours"] > 0
    assert local["total_wall_hours"] == pytest.approx(sum(local["wall_hours"].values()))
    table = almomd_budget(workdir, "--cores", "2").stdout
    assert "On one machine with 2 cores" in table
    missing = almomd_budget(workdir, "--profile", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no profile of that name or path" in missing.stderr


def test_local_rules_match_the_workflow():
    flagged = set()
    for path in (deploy.workflow_dir() / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", path.read_text()):
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if name and "localrule: True" in block:
                flagged.add(name.group(1))
    assert flagged | {"all", "campaign"} == set(LOCAL_RULES)


def test_snakemake_pin_matches_the_parsed_dry_run_format():
    """The planner parses Snakemake's dry-run text: bumping the pin means re-checking it."""
    import snakemake

    pin = re.search(r'"snakemake==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert snakemake.__version__ == pin
    sample = (
        "rule train_member:\n"
        "    output: results/iter_2/models/member_1_0.nequip.zip\n"
        "    wildcards: iteration=2, subset=1, seed=0\n"
        "    resources: tmpdir=<TBD>, mem_mb=8000, mem=8 GB, runtime=120, "
        "slurm_partition=gpu, gpu=1\n"
        "\n"
        "checkpoint decide:\n"
        "    wildcards: iteration=2\n"
        "    threads: 3\n"
        "    resources: runtime=10\n"
    )
    train, decide = dry_run.parse_dry_run(sample)
    assert train.rule == "train_member" and train.iteration == "2"
    assert train.partition == "gpu" and train.gpu_hours == pytest.approx(2.0)
    assert train.cpu_hours == pytest.approx(2.0)
    assert decide.local and decide.threads == 3 and decide.cpu_hours == 0.0


def test_label_budget_states_the_audit_labels():
    from almomd.settings.schema import validate_config

    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["heldout"] = {"source": "audit", "audit_per_walker": 3}
    config["exploration"]["replicas"] = 2
    labels = budget.label_budget(validate_config(config, REPO / ".test", check_files=False))
    walkers = 2 * len(config["exploration"]["temperatures"])
    assert labels["audit_per_iteration"] == 3 * walkers
    assert labels["reference_md"] == 0
    per_iteration = config["selection"]["max_frames"] + 3 * walkers
    assert labels["campaign"] == config["initial_data"]["n_frames"] + 2 * per_iteration
