"""Plan the compute budget of a campaign before spending it.

``almomd budget`` lays out every iteration up to ``max_iterations`` (no early
convergence) from the config (:func:`almomd.planning.jobs.campaign_jobs`), with the
resources the profile would submit each job with (``--profile``, the same a
real run uses), and tells apart what is already done (outputs present). With
``--snakemake`` the jobs come from Snakemake's own dry run instead
(``plan_all_iterations: true``; a second dry run with ``--forceall`` gives the
whole campaign): the same plan, slower, and the check that the fast one is right."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from almomd import lineage
from almomd.planning import jobs as campaign
from almomd.planning.dry_run import snakemake_plan
from almomd.planning.jobs import PlanError as BudgetError
from almomd.planning.jobs import PlannedJob
from almomd.planning.profiles import read_profile, resolve_resources


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


def label_budget(config: dict, directory: Path | str | None = None) -> dict:
    """Labels (single points of the labeler) the campaign spends, from its validated config.

    Per iteration: at most ``selection.max_frames`` selected frames, plus the
    audit frames (``heldout.audit_per_walker`` per walker) with
    ``heldout.source: audit``; once: the generated initial frames (of every
    system) and, with
    ``heldout.source: reference_md``, every MD step of the reference MD; with
    ``observables.enabled`` (and the structures in ``directory``), phonopy's displaced
    structures of every system's harmonic model.
    """
    from almomd.settings.campaign import conditions, reference_md_steps, walkers

    held = config["heldout"]
    audit = held["audit_per_walker"] * len(walkers(config)) if held["source"] == "audit" else 0
    steps = reference_md_steps(held)
    reference = len(conditions(config)) * steps if held["source"] == "reference_md" else 0
    generated = config["initial_data"]["n_frames"] * len(config["systems"])  # per system
    initial = generated if config["initial_data"]["file"] is None else 0
    per_iteration = config["selection"]["max_frames"] + audit
    harmonic = 0
    if config["observables"]["enabled"] and directory is not None:
        from almomd.observables.anharmonicity import displaced_count
        from almomd.settings.files import structures

        harmonic = sum(displaced_count(a) for a in structures(config, directory).values())
    return {
        "selected_per_iteration": config["selection"]["max_frames"],
        "audit_per_iteration": audit,
        "initial": initial,
        "reference_md": reference,
        "harmonic": harmonic,
        "campaign": initial + reference + harmonic + per_iteration * config["max_iterations"],
    }


def campaign_config(directory: Path | str, configfile: Path | str | None) -> dict:
    """The campaign's validated config (``config/config.yaml`` in ``directory`` by default)."""
    from almomd.errors import ConfigError
    from almomd.settings.schema import load_config

    try:
        return load_config(configfile or Path(directory, "config", "config.yaml"), False)
    except ConfigError as error:
        raise BudgetError(str(error)) from None


def campaign_plan(
    config: dict, directory: Path | str, profile: Path | str | None
) -> tuple[list[PlannedJob], list[PlannedJob]]:
    """(remaining, whole campaign) from the config and the profile, without Snakemake."""
    from almomd.settings.campaign import walkers

    found = lineage.damage(
        directory,
        len(walkers(config)),
        config["labeler"]["n_batches"],
        config["initial_data"]["file"] is None,
    )
    if found:
        raise BudgetError(lineage.advice(found))
    everything = campaign.campaign_jobs(config)
    try:
        resolve_resources(everything, read_profile(profile))
    except ValueError as error:
        raise BudgetError(f"profile {profile}: {error}") from None
    for job in everything:
        job.runtime_h  # noqa: B018 - raises BudgetError for a missing runtime
    return campaign.remaining(everything, directory), everything


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
    settings = read_profile(profile) or {}
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
        "jobs_from": "snakemake --dry-run" if snakemake else "the config (almomd.planning.jobs)",
        "remaining": summarize(remaining),
        "done": summarize(done),
        "campaign": summarize(everything),
        "labels": label_budget(config, directory),
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
    """The expected cost of ``jobs`` from the campaign's cost model (:mod:`almomd.planning.costs`).

    Job-hours per iteration and in total (each job's expected seconds times its
    CPUs or GPUs), the source of each rule's cost (fitted or first guess),
    with ``cores`` the expected wall time on one machine, and with ``queue``
    on a cluster with that many jobs at once, each round waiting ``queue_wait_h``.
    """
    from almomd.planning import costs, measured

    facts = costs.campaign(config, directory)
    fitted = costs.fit_all(measured.measurements(directory, facts))
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
