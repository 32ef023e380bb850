"""Plan the compute budget of a campaign before spending it.

``almomd budget`` lays out every iteration up to ``max_iterations`` (no early
convergence) from the config (:func:`almomd.jobs.campaign_jobs`), with the
resources the profile would submit each job with (``--profile``, the same a
real run uses), and tells apart what is already done (outputs present). With
``--snakemake`` the jobs come from Snakemake's own dry run instead
(``plan_all_iterations: true``; a second dry run with ``--forceall`` gives the
whole campaign): the same plan, slower, and the check that the fast one is right.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from almomd import jobs as campaign
from almomd import layout
from almomd.jobs import LOCAL_RULES as LOCAL_RULES
from almomd.jobs import PACK_RULE, PlannedJob
from almomd.jobs import PlanError as BudgetError
from almomd.runner import console_script

_JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FIELD = re.compile(r"^\s+(\w+): (.*)$")


def parse_dry_run(text: str) -> list[PlannedJob]:
    """Jobs, wildcards, threads and resources from ``snakemake --dry-run`` output."""
    jobs: list[PlannedJob] = []
    current: PlannedJob | None = None
    for line in text.splitlines():
        start = _JOB_START.match(line)
        if start:
            current = PlannedJob(start.group(1))
            jobs.append(current)
            continue
        match = _FIELD.match(line) if current is not None else None
        if match is None:
            if current is not None and not line.startswith(" "):
                current = None
            continue
        name, value = match.groups()
        if name == "wildcards":
            current.wildcards = dict(item.split("=", 1) for item in value.split(", "))
        elif name == "resources":
            current.resources = dict(
                item.split("=", 1) for item in value.split(", ") if "=" in item
            )
        elif name == "threads":
            current.threads = int(value)
    return jobs


def _command(
    directory: Path | str,
    configfile: Path | str | None,
    profile: Path | str | None,
    snakefile: Path | str | None,
    forceall: bool,
) -> list[str]:
    from almomd import resources

    if snakefile is None:
        own = Path(directory, "Snakefile")  # a campaign directory's (see almomd init)
        snakefile = own if own.is_file() else resources.snakefile()
    command = [
        console_script("snakemake"), "--dry-run",
        "--snakefile", str(snakefile),
        "--directory", str(directory),
        "--config", "plan_all_iterations=True",
    ]  # fmt: skip
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    if profile is not None:
        _profile(profile)  # refused as the plan from the config refuses it
        command += ["--profile", str(profile)]
    if forceall:
        command.append("--forceall")
    return command


def _parse_result(process: subprocess.Popen) -> list[PlannedJob]:
    output, _ = process.communicate()
    if process.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise BudgetError(f"snakemake could not plan the campaign:\n{tail}")
    jobs = parse_dry_run(output)
    for job in jobs:
        job.runtime_h  # noqa: B018 - raises BudgetError for a missing runtime
    return jobs


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@dataclass
class Summary:
    """Job counts and hours grouped by a key (iteration, partition or total)."""

    jobs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0

    def add(self, job: PlannedJob) -> None:
        self.jobs[job.family] += 1
        self.gpu_hours += job.gpu_hours
        self.cpu_hours += job.cpu_hours

    def to_dict(self) -> dict:
        return {
            "jobs": dict(sorted(self.jobs.items())),
            "n_jobs": sum(self.jobs.values()),
            "gpu_hours": round(self.gpu_hours, 6),
            "cpu_hours": round(self.cpu_hours, 6),
        }


def summarize(jobs: Iterable[PlannedJob]) -> dict:
    """Budget per iteration, per partition and in total."""
    per_iteration: dict[str, Summary] = defaultdict(Summary)
    per_partition: dict[str, Summary] = defaultdict(Summary)
    total = Summary()
    partitions: dict[str, set[str]] = defaultdict(set)
    for job in jobs:
        per_iteration[job.iteration].add(job)
        per_partition[job.partition].add(job)
        total.add(job)
        partitions[job.family].add(job.partition)

    def order(key: str) -> tuple:
        return (0, -1) if key == "initial" else (1, int(key)) if key.isdigit() else (2, 0)

    return {
        "iterations": {k: per_iteration[k].to_dict() for k in sorted(per_iteration, key=order)},
        "partitions": {k: v.to_dict() for k, v in sorted(per_partition.items())},
        "rule_partitions": {k: sorted(v) for k, v in sorted(partitions.items())},
        "total": total.to_dict(),
    }


def local_wall_hours(
    jobs: Iterable[PlannedJob], cores: int, cluster: bool = False, queue_wait_h: float = 0.0
) -> dict[str, float]:
    """Wall time (h) of ``jobs`` run on one machine with ``cores`` cores, per iteration.

    The steps of an iteration run one after the other; the jobs of one step
    (members, walkers, batches) run side by side, ``cores // threads`` at a time,
    each for its runtime estimate. Reference MD is counted as its own step.
    ``cluster``: ``cores`` is the number of jobs in the queue at once (the
    profile's ``jobs``), each on a node of its own, every round of jobs first
    waiting ``queue_wait_h`` in the queue.
    """
    waves: dict[tuple[str, str], list[PlannedJob]] = defaultdict(list)
    for job in jobs:
        if not job.local:
            waves[(job.iteration, job.family)].append(job)
    hours: dict[str, float] = defaultdict(float)
    wait = queue_wait_h if cluster else 0.0  # one machine has no queue
    for (iteration, _), step in waves.items():
        at_once = cores if cluster else max(1, cores // max(1, step[0].threads))
        rounds = -(-len(step) // at_once)
        hours[iteration] += rounds * (wait + max(job.runtime_h for job in step))
    return {iteration: round(h, 9) for iteration, h in hours.items()}


def label_budget(config: dict) -> dict:
    """Labels (single points of the labeler) the campaign spends, from its validated config.

    Per iteration: at most ``selection.max_frames`` selected frames, plus the
    audit frames (``heldout.audit_per_walker`` per walker) with
    ``heldout.source: audit``; once: the generated initial frames (of every
    system) and, with
    ``heldout.source: reference_md``, every MD step of the reference MD.
    """
    from almomd.config import conditions, walkers

    held = config["heldout"]
    audit = held["audit_per_walker"] * len(walkers(config)) if held["source"] == "audit" else 0
    steps = held["equilibration_steps"] + held["steps_between"] * (held["frames_per_condition"] - 1)
    reference = len(conditions(config)) * steps if held["source"] == "reference_md" else 0
    generated = config["initial_data"]["n_frames"] * len(config["systems"])  # per system
    initial = generated if config["initial_data"]["file"] is None else 0
    per_iteration = config["selection"]["max_frames"] + audit
    return {
        "selected_per_iteration": config["selection"]["max_frames"],
        "audit_per_iteration": audit,
        "initial": initial,
        "reference_md": reference,
        "campaign": initial + reference + per_iteration * config["max_iterations"],
    }


def campaign_config(directory: Path | str, configfile: Path | str | None) -> dict:
    """The campaign's validated config (``config/config.yaml`` in ``directory`` by default)."""
    from almomd.config import ConfigError, load_config

    try:
        return load_config(configfile or Path(directory, "config", "config.yaml"), False)
    except ConfigError as error:
        raise BudgetError(str(error)) from None


def _profile(profile: Path | str | None) -> dict | None:
    """The profile's settings (its config.yaml), None without one."""
    import yaml

    if profile is None:
        return None
    path = Path(profile, "config.yaml")
    if not path.is_file():
        raise BudgetError(f"profile {profile} is not a directory with a config.yaml")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise BudgetError(f"{path} is not valid YAML: {error}") from None


def campaign_plan(
    config: dict, directory: Path | str, profile: Path | str | None
) -> tuple[list[PlannedJob], list[PlannedJob]]:
    """(remaining, whole campaign) from the config and the profile, without Snakemake."""
    for missing, made in layout.broken_chain(directory, config["labeler"]["n_batches"]):
        raise BudgetError(
            f"{missing} is missing, but {made} was made from it: the campaign's history is "
            "incomplete (snakemake refuses to run it; see its message)"
        )
    everything = campaign.campaign_jobs(config)
    try:
        campaign.resolve_resources(everything, _profile(profile))
    except ValueError as error:
        raise BudgetError(f"profile {profile}: {error}") from None
    for job in everything:
        job.runtime_h  # noqa: B018 - raises BudgetError for a missing runtime
    return campaign.remaining(everything, directory), everything


def snakemake_plan(
    directory: Path | str,
    configfile: Path | str | None,
    profile: Path | str | None,
    snakefile: Path | str | None = None,
) -> tuple[list[PlannedJob], list[PlannedJob]]:
    """(remaining, whole campaign) from Snakemake's dry runs, side by side.

    Without a ``results`` directory nothing is done and one dry run suffices.
    """
    args = (directory, configfile, profile, snakefile)
    remaining_run = _start(_command(*args, forceall=False))
    started = Path(directory, layout.RESULTS).exists()
    everything_run = _start(_command(*args, forceall=True)) if started else None
    remaining = _parse_result(remaining_run)
    return remaining, _parse_result(everything_run) if everything_run else remaining


def plan(
    directory: Path | str,
    configfile: Path | str | None = None,
    profile: Path | str | None = None,
    snakefile: Path | str | None = None,
    cores: int | None = None,
    snakemake: bool = False,
    jobs_at_once: int | None = None,
    queue_wait_minutes: float = 0.0,
) -> dict:
    """The remaining budget, what is already done, and the whole campaign.

    Runtimes are the profile's (its wall-time limits) or, without a profile, the
    rules' own estimates. With ``cores``, the wall time of a run on one machine
    with that many cores is planned too (:func:`local_wall_hours`); on a cluster
    (a profile with an ``executor``), the wall time with ``jobs_at_once`` jobs in
    the queue at once (default: the profile's ``jobs``), each round of jobs
    waiting ``queue_wait_minutes`` in the queue first (the user's estimate).
    With ``snakemake``, the jobs come from Snakemake's dry runs
    (:func:`snakemake_plan`).
    """
    if queue_wait_minutes < 0:
        raise BudgetError(f"queue wait {queue_wait_minutes} min: give 0 or more minutes")
    config = campaign_config(directory, configfile)
    settings = _profile(profile) or {}
    queue = jobs_at_once or (settings.get("jobs") if settings.get("executor") else None)
    wait_h = queue_wait_minutes / 60.0
    if snakemake:
        remaining, everything = snakemake_plan(directory, configfile, profile, snakefile)
    else:
        remaining, everything = campaign_plan(config, directory, profile)
    left = {job.key for job in remaining}
    done = [job for job in everything if job.key not in left]
    result = {
        "assumption": "every iteration up to max_iterations runs (no early convergence)",
        "runtimes": f"profile {profile}" if profile else "the rules' own estimates (no profile)",
        "jobs_from": "snakemake --dry-run" if snakemake else "the config (almomd.jobs)",
        "remaining": summarize(remaining),
        "done": summarize(done),
        "campaign": summarize(everything),
        "labels": label_budget(config),
        "expected": expected(config, directory, remaining, cores, queue, wait_h),
    }
    if queue:
        per_iteration = local_wall_hours(remaining, queue, cluster=True, queue_wait_h=wait_h)
        result["cluster"] = {
            "jobs_at_once": queue,
            "queue_wait_minutes": queue_wait_minutes,
            "wall_hours": per_iteration,
            "total_wall_hours": round(sum(per_iteration.values()), 9),
        }
    if cores:
        per_iteration = local_wall_hours(remaining, cores)
        result["local"] = {
            "cores": cores,
            "wall_hours": per_iteration,
            "total_wall_hours": round(sum(per_iteration.values()), 9),
        }
    return result


def expected(
    config: dict,
    directory: Path | str,
    jobs: Sequence[PlannedJob],
    cores: int | None,
    queue: int | None = None,
    queue_wait_h: float = 0.0,
) -> dict:
    """The expected cost of ``jobs`` from the campaign's cost model (:mod:`almomd.costs`).

    Job-hours per iteration and in total (each job's expected seconds times its
    CPUs or GPUs), the source of each rule's cost (fitted or first guess),
    with ``cores`` the expected wall time on one machine, and with ``queue``
    on a cluster with that many jobs at once, each round waiting ``queue_wait_h``.
    """
    from almomd import costs

    facts = costs.campaign(config, directory)
    fitted = costs.fit_all(costs.measurements(directory, facts))
    timed = []
    hours: dict[str, float] = defaultdict(float)
    gpu_hours = cpu_hours = 0.0
    for job in jobs:
        if job.local or job.family not in fitted:
            continue
        seconds = fitted[job.family].seconds(facts.units(job.rule, job.wildcards))
        share = seconds / 3600.0 / job.runtime_h if job.runtime_h else 0.0
        gpu_hours += job.gpu_hours * share
        cpu_hours += job.cpu_hours * share
        hours[job.iteration] += seconds / 3600.0
        timed.append(
            PlannedJob(
                job.rule, job.wildcards, {**job.resources, "runtime": seconds / 60.0}, job.threads
            )
        )
    rules = sorted({job.family for job in timed})
    result = {
        "job_hours": {iteration: round(h, 9) for iteration, h in hours.items()},
        "gpu_hours": round(gpu_hours, 6),
        "cpu_hours": round(cpu_hours, 6),
        "sources": {rule: fitted[rule].source for rule in rules},
        "first_guess": [rule for rule in rules if fitted[rule].n_measured == 0],
    }
    if cores:
        per_iteration = local_wall_hours(timed, cores)
        result["local_wall_hours"] = per_iteration
        result["total_local_wall_hours"] = round(sum(per_iteration.values()), 9)
    if queue:
        per_iteration = local_wall_hours(timed, queue, cluster=True, queue_wait_h=queue_wait_h)
        result["cluster_wall_hours"] = per_iteration
        result["total_cluster_wall_hours"] = round(sum(per_iteration.values()), 9)
        result["queue_wait_minutes"] = round(queue_wait_h * 60.0, 9)
    return result


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
    if path.stem.startswith(PACK_RULE + "_"):
        return PACK_RULE
    stem = path.stem.split("_")[0]
    rule = prefixes.get(stem)
    if rule == "label_batch" and path.parent.name == "initial":
        return "label_initial_batch"
    return rule


def actual_vs_estimate(directory: Path | str, jobs: Sequence[PlannedJob]) -> dict[str, dict]:
    """Measured wall times (benchmark files) against the runtime estimates, per rule."""
    from almomd.costs import benchmark_seconds

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
