"""The budget's arithmetic on hand-made jobs (the dry runs are in integration/test_budget)."""

import pytest

from almomd.planning import budget, profiles


def test_local_wall_time_counts_rounds_of_side_by_side_jobs():
    def job(rule, iteration, runtime, threads=1):
        return budget.PlannedJob(rule, {"iteration": iteration}, {"runtime": runtime}, threads)

    jobs = [job("train_member", "0", 60) for _ in range(4)]  # 2 rounds of 2 on 2 cores
    jobs += [job("explore", "0", 30) for _ in range(2)]  # 1 round
    jobs += [job("label_batch", "0", 20, threads=2) for _ in range(3)]  # 3 rounds of 1
    jobs += [job("select_frames", "0", 0)]  # local: no time
    jobs += [job("train_member", "1", 90)]
    hours = budget.local_wall_hours(jobs, cores=2)
    assert hours == pytest.approx({"0": 2 * 1.0 + 0.5 + 3 * 20 / 60, "1": 1.5})
    # on a cluster with 2 jobs in the queue at once, each job on its own node:
    # a job's threads do not count against the 2
    hours = budget.local_wall_hours(jobs, 2, cluster=True)
    assert hours == pytest.approx({"0": 2 * 1.0 + 0.5 + 2 * 20 / 60, "1": 1.5})
    hours = budget.local_wall_hours(jobs, 100, cluster=True)
    assert hours == pytest.approx({"0": 1.0 + 0.5 + 20 / 60, "1": 1.5})
    # every round of jobs waits in the queue first: 2 + 1 + 2 rounds in iteration 0
    hours = budget.local_wall_hours(jobs, 2, cluster=True, queue_wait_h=0.25)
    assert hours == pytest.approx({"0": 2 * 1.25 + 0.75 + 2 * (0.25 + 20 / 60), "1": 1.75})
    # on one machine nothing waits in a queue
    assert budget.local_wall_hours(jobs, 2, queue_wait_h=0.25) == budget.local_wall_hours(jobs, 2)


def test_members_per_job_packs_the_members_into_rules_that_ask_for_the_pack(tmp_path):
    from conftest import REPO, test_config_with

    from almomd.planning import jobs
    from almomd.settings.campaign import member_packs
    from almomd.settings.schema import validate_config

    def packed(config):
        config["ensemble"] |= {"n_subsets": 2, "n_seeds": 3}
        config["training"]["members_per_job"] = 4
        config["max_iterations"] = 1

    config = validate_config(test_config_with(packed), REPO / ".test")
    assert member_packs(config) == [[(0, 0), (0, 1), (0, 2), (1, 0)], [(1, 1), (1, 2)]]
    planned = jobs.campaign_jobs(config)
    packs = [job for job in planned if job.family == "train_pack"]
    assert [job.rule for job in packs] == ["train_pack_0", "train_pack_1"]
    assert not any(job.rule == "train_member" for job in planned)
    assert [job.members for job in packs] == [4, 2]
    assert packs[1].output == "results/iter_0/models/member_1_1.nequip.zip"
    assert packs[1].also == ("results/iter_0/models/member_1_2.nequip.zip",)
    subsets = {job.key: job.wildcards["subset"] for job in planned if job.rule == "subset"}
    assert [subsets[need] for need in packs[0].needs] == ["0", "1"]
    assert [subsets[need] for need in packs[1].needs] == ["1"]
    explore = next(job for job in planned if job.rule == "explore")
    novelty = next(job for job in planned if job.rule == "fit_novelty")
    assert set(explore.needs) == {job.key for job in packs} | {novelty.key}
    assert {job.key for job in packs} < set(novelty.needs)  # fitted to the packaged members
    own = jobs.RULE_RESOURCES["train_member"]["runtime"]
    assert [job.resources["runtime"] for job in packs] == [4 * own, 2 * own]
    # a profile's train_member resources apply to the packs, runtime times the members;
    # the pack's own set-resources win
    profile = {
        "default-resources": {"runtime": 10, "slurm_partition": "cpu"},
        "set-resources": {
            "train_member": {"slurm_partition": "gpu", "runtime": 30},
            "train_pack_1": {"mem_mb": 9000},
        },
    }
    profiles.resolve_resources(planned, profile)
    assert [(j.partition, j.resources["runtime"]) for j in packs] == [("gpu", 120), ("gpu", 60)]
    assert packs[1].resources["mem_mb"] == 9000
    summary = budget.summarize(planned)
    assert summary["total"]["jobs"]["train_pack"] == 2
    assert summary["rule_partitions"]["train_pack"] == ["gpu"]
    # every output there but one member of pack 1: that pack is still to run, not pack 0
    for job in planned:
        for output in (job.output, *job.also):
            if output and output != packs[1].also[0]:
                (tmp_path / output).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / output).touch()
    assert {job.rule for job in jobs.remaining(planned, tmp_path)} >= {"train_pack_1"}
    assert "train_pack_0" not in {job.rule for job in jobs.remaining(planned, tmp_path)}


def test_walkers_per_job_packs_the_walkers_into_rules_that_ask_for_the_pack():
    from conftest import REPO, test_config_with

    from almomd.planning import costs, jobs
    from almomd.settings.campaign import walker_packs
    from almomd.settings.schema import validate_config

    def packed(config):
        config["exploration"] |= {"replicas": 3, "walkers_per_job": 4}  # 6 walkers: 4 + 2
        config["max_iterations"] = 1

    config = validate_config(test_config_with(packed), REPO / ".test")
    assert walker_packs(config) == [[0, 1, 2, 3], [4, 5]]
    planned = jobs.campaign_jobs(config)
    packs = [job for job in planned if job.family == "explore_pack"]
    assert [job.rule for job in packs] == ["explore_pack_0", "explore_pack_1"]
    assert not any(job.rule == "explore" for job in planned)
    assert packs[1].output == "results/iter_0/explore/walker_4.extxyz"
    assert packs[1].also == ("results/iter_0/explore/walker_5.extxyz",)
    select = next(job for job in planned if job.rule == "select_frames")
    assert {job.key for job in packs} < set(select.needs)
    own = jobs.RULE_RESOURCES["explore"]["runtime"]
    assert [job.resources["runtime"] for job in packs] == [4 * own, 2 * own]
    profile = {"set-resources": {"explore": {"slurm_partition": "gpu", "runtime": 20}}}
    profiles.resolve_resources(planned, profile)
    assert [(j.partition, j.resources["runtime"]) for j in packs] == [("gpu", 80), ("gpu", 40)]
    # the cost model's units of a pack: the sum over its walkers
    facts = costs.campaign(config, REPO / ".test")
    one = facts.units("explore", {"walker": "0", "iteration": "0"})
    assert facts.units("explore_pack_0", {"iteration": "0"}) == pytest.approx(4 * one)
    assert budget.summarize(planned)["total"]["jobs"]["explore_pack"] == 2
