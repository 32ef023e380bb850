"""The budget's arithmetic on hand-made jobs (the dry runs are in integration/test_budget)."""

import pytest

from almomd import budget


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
