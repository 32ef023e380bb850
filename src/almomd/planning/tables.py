"""What ``almomd budget`` prints: the plan, the expected cost, and estimates against measured
times.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from almomd import layout
from almomd.planning.jobs import PACKED, PlannedJob, rule_family


def _queue_wait_text(minutes: float) -> str:
    return f"{minutes:g} min queue wait per round of jobs" if minutes else "no queue wait"


def format_plan(result: dict) -> str:
    """A plain-text table of :func:`plan`'s result."""

    def row_text(key: str, row: dict) -> str:
        return f"{key:>10}  {row['n_jobs']:>5}  {row['gpu_hours']:>9.2f}  {row['cpu_hours']:>9.2f}"

    columns = f"{'jobs':>5}  {'GPU-h':>9}  {'CPU-h':>9}"
    lines = [f"Budget plan ({result['assumption']})", "", "Remaining:"]
    lines.append(f"{'iteration':>10}  {columns}  jobs per rule")
    for key, row in result["remaining"]["iterations"].items():
        rules = ", ".join(f"{rule} {n}" for rule, n in row["jobs"].items())
        lines.append(f"{row_text(key, row)}  {rules}")
    lines.append(row_text("total", result["remaining"]["total"]))
    lines += ["", "Per partition (remaining):", f"{'partition':>10}  {columns}"]
    for key, row in result["remaining"]["partitions"].items():
        lines.append(row_text(key, row))
    mapping = result["campaign"]["rule_partitions"].items()
    lines += ["", "Rule -> partition: " + ", ".join(f"{r} {'/'.join(p)}" for r, p in mapping)]
    done, campaign = result["done"]["total"], result["campaign"]["total"]
    lines.append(
        f"Already done: {done['n_jobs']} of {campaign['n_jobs']} jobs "
        f"({done['gpu_hours']:.2f} of {campaign['gpu_hours']:.2f} GPU-h, "
        f"{done['cpu_hours']:.2f} of {campaign['cpu_hours']:.2f} CPU-h)"
    )
    for key, where in (("local", "On one machine with {cores} cores (remaining)"),
                       ("cluster", "On the cluster with {jobs_at_once} jobs at once "
                                   "(remaining, {wait})")):  # fmt: skip
        if key in result:
            wall = result[key]
            wait = _queue_wait_text(wall.get("queue_wait_minutes", 0.0))
            per = ", ".join(f"{k} {v:.2f}" for k, v in wall["wall_hours"].items())
            lines.append(
                f"{where.format(**wall, wait=wait)}: {wall['total_wall_hours']:.2f} h wall time "
                f"at most ({per})"
            )
    lines[1:1] = [f"Runtimes: {result['runtimes']}", f"Jobs: from {result['jobs_from']}"]
    lines += _expected_lines(result["expected"])
    labels = result["labels"]
    lines.append(
        f"Labels (single points) at most: {labels['campaign']} in all = "
        f"{labels['initial']} initial + {labels['reference_md']} reference MD steps (held-out) + "
        f"{labels.get('harmonic', 0)} harmonic reference (sigma^A) + "
        f"per iteration {labels['selected_per_iteration']} selected + "
        f"{labels['audit_per_iteration']} audit (held-out)"
    )
    return "\n".join(lines)


def _expected_lines(expected: dict) -> list[str]:
    """The expected cost (:func:`expected`) as text, its first guesses marked."""
    lines = [
        f"Expected (cost model, remaining): {sum(expected['job_hours'].values()):.2f} job-hours, "
        f"{expected['gpu_hours']:.2f} GPU-h, {expected['cpu_hours']:.2f} CPU-h; the above are "
        "the worst case (every job at its runtime limit)"
    ]
    if "total_local_wall_hours" in expected:
        lines.append(
            f"  expected wall time on one machine: {expected['total_local_wall_hours']:.2f} h"
        )
    if "total_cluster_wall_hours" in expected:
        wait = _queue_wait_text(expected["queue_wait_minutes"])
        lines.append(
            f"  expected wall time on the cluster ({wait}): "
            f"{expected['total_cluster_wall_hours']:.2f} h"
        )
    if expected["first_guess"]:
        lines.append(
            "  FIRST GUESS (no job of these rules has run here; costs measured on the demo): "
            + ", ".join(expected["first_guess"])
        )
    return lines


def benchmark_rule(path: Path) -> str | None:
    """The rule that wrote a benchmark file (``benchmarks/iter_I/train_K_M.tsv``, ...)."""
    prefixes = {
        "train": "train_member", "compile": "compile_member", "explore": "explore",
        "evaluate": "evaluate", "label": "label_batch",
    }  # fmt: skip
    family = rule_family(path.stem)
    if family in PACKED:  # train_pack_P, explore_pack_P
        return family
    stem = path.stem.split("_")[0]
    rule = prefixes.get(stem)
    if rule == "label_batch" and path.parent.name == "initial":
        return "label_initial_batch"
    return rule


def actual_vs_estimate(directory: Path | str, jobs: Sequence[PlannedJob]) -> dict[str, dict]:
    """Measured wall times (benchmark files) against the runtime estimates, per rule."""
    from almomd.planning.measured import benchmark_seconds

    measured: dict[str, list[float]] = defaultdict(list)
    for path in sorted(Path(directory, layout.BENCHMARKS).glob("*/*.tsv")):
        rule = benchmark_rule(path)
        if rule is not None:
            measured[rule].extend(benchmark_seconds(path))
    estimates: dict[str, float] = {}
    for job in jobs:  # the longest limit of a rule's jobs (packs differ in size)
        if not job.local:
            estimates[job.family] = max(estimates.get(job.family, 0.0), job.runtime_h * 60.0)
    report = {}
    for rule, seconds in sorted(measured.items()):
        estimate_min = estimates.get(rule)
        mean_min = sum(seconds) / len(seconds) / 60.0
        report[rule] = {
            "n_measured": len(seconds),
            "mean_min": round(mean_min, 3),
            "max_min": round(max(seconds) / 60.0, 3),
            "estimate_min": estimate_min,
            "estimate_over_max": round(estimate_min * 60.0 / max(seconds), 2)
            if estimate_min
            else None,
        }
    return report


def format_actual(report: dict[str, dict]) -> str:
    """A plain-text table of :func:`actual_vs_estimate`."""
    lines = [
        f"{'rule':>20}  {'n':>3}  {'mean min':>9}  {'max min':>8}  {'estimate':>8}  {'est/max':>7}"
    ]
    for rule, row in report.items():
        estimate = "-" if row["estimate_min"] is None else f"{row['estimate_min']:.0f}"
        ratio = "-" if row["estimate_over_max"] is None else f"{row['estimate_over_max']:.1f}"
        lines.append(
            f"{rule:>20}  {row['n_measured']:>3}  {row['mean_min']:>9.2f}  {row['max_min']:>8.2f}  "
            f"{estimate:>8}  {ratio:>7}"
        )
    if not report:
        lines.append("no benchmark files found under benchmarks/ (has the campaign run here?)")
    else:
        lines.append(
            "est/max < 1: a job ran longer than its runtime estimate; raise it in the profile"
        )
    return "\n".join(lines)
