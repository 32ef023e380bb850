"""The jobs of a campaign from Snakemake's own dry run (``almomd budget --snakemake``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from almomd import layout
from almomd.planning.jobs import PlanError as BudgetError
from almomd.planning.jobs import PlannedJob
from almomd.planning.profiles import read_profile
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
    from almomd import deploy

    if snakefile is None:
        own = Path(directory, "Snakefile")  # a campaign directory's (see almomd init)
        snakefile = own if own.is_file() else deploy.snakefile()
    command = [
        console_script("snakemake"), "--dry-run",
        "--snakefile", str(snakefile),
        "--directory", str(directory),
        "--config", "plan_all_iterations=True",
    ]  # fmt: skip
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    if profile is not None:
        read_profile(profile)  # refused as the plan from the config refuses it
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
