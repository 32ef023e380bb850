"""The ``almomd`` command line: status, validation, budget and production MD of a campaign."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from almomd import deploy, layout
from almomd.errors import ConfigError
from almomd.settings.history import changed_settings
from almomd.settings.schema import load_config
from almomd.settings.sections import Settings

CONFIG = "config/config.yaml"  # a campaign directory's settings (see almomd init)
USAGE_ERROR = 2  # a bad option value, as argparse exits


def _number(kind: type, low: float, inclusive: bool, example: str):
    """An argparse type: a ``kind`` number above ``low`` (or equal, with ``inclusive``)."""
    relation = ">=" if inclusive else ">"
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {noun} {relation} {low:g}: give e.g. {example}"
            )
        return value

    return parse


def _refuse(command: str, message: str) -> int:
    """Say why ``command``'s options are refused; the exit status of a bad option value."""
    print(f"almomd {command}: {message}", file=sys.stderr)
    return USAGE_ERROR


def _campaign_directory(command: str, directory: str) -> str | None:
    """Why the existing ``directory`` cannot be a campaign directory (None if it can)."""
    path = Path(directory)
    if not (path / layout.RESULTS).is_dir() and not (path / CONFIG).is_file():
        return (
            f"{path.resolve()} is not a campaign directory (no {layout.RESULTS}/ and no "
            f"{CONFIG}): run `almomd {command}` in the directory snakemake runs in, or give -d"
        )
    return None


def _config_path(args: argparse.Namespace) -> Path:
    """The campaign's config: --configfile, else config/config.yaml of the campaign directory.

    A relative --configfile is found from the current directory, else from the campaign's.
    """
    if not args.configfile:
        return Path(args.directory, CONFIG)
    given = Path(args.configfile)
    return given if given.is_absolute() or given.exists() else Path(args.directory, given)


def _init(args: argparse.Namespace) -> int:
    for path, what in deploy.init_campaign(args.directory, force=args.force, module=args.module):
        print(f"{what:>8}  {path}")
    directory = Path(args.directory)
    print(
        f"\ncampaign directory {directory.resolve()}: edit {directory / CONFIG} "
        "(the keys are documented in almomd's config/README.md), then in that directory:\n"
        "  almomd validate             # check the settings\n"
        "  almomd budget --cores 8     # plan the jobs, labels and wall time\n"
        "  snakemake --cores 8         # run here (on Slurm: snakemake --profile slurm)\n"
        "  almomd status               # watch"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    from almomd.reporting.status import (
        campaign_state,
        campaign_status,
        format_table,
        labeling_notes,
    )

    problem = _campaign_directory("status", args.directory)
    if problem:
        return _refuse("status", problem)
    try:
        rows = campaign_status(args.directory)
    except ValueError as error:  # DataFileError, or a truncated table or summary
        print(f"almomd status: {error}", file=sys.stderr)
        return 1
    changes, config = {}, None
    config_path = _config_path(args)
    if config_path.is_file():
        try:
            config = load_config(config_path, False)
            changes = changed_settings(args.directory, config)
        except ConfigError as error:
            print(f"warning: {config_path}: {error}", file=sys.stderr)
    state = campaign_state(args.directory, rows, config)
    if args.json:  # the rows of status.json, plus what changed since an iteration ran
        for row in rows:
            if row["iteration"] in changes:
                row["settings_changed"] = changes[row["iteration"]]
        print(json.dumps(rows, indent=2))
        return 1 if state.damaged else 0
    print(f"campaign in {Path(args.directory).resolve()}")
    print(format_table(rows))
    for note in labeling_notes(args.directory):
        print(note)
    print(f"campaign: {state.text}")
    for iteration, lines in changes.items():
        print(
            f"warning: iteration {iteration} ran with other settings than {config_path} now "
            "(changes apply to steps not yet run):\n  " + "\n  ".join(lines),
            file=sys.stderr,
        )
    return 1 if state.damaged else 0


def _validate(args: argparse.Namespace) -> int:
    from almomd.settings.campaign import describe_systems

    path = (Path(args.config) if args.config else Path(args.directory, CONFIG)).resolve()
    os.chdir(args.directory)  # paths in the config are relative to the campaign directory
    try:
        config = load_config(path)
    except ConfigError as error:
        print(f"invalid configuration {path}: {error}", file=sys.stderr)
        return 1
    print(f"{path}: valid")
    print(describe_systems(config, Path.cwd()))
    return 0


def _budget(args: argparse.Namespace) -> int:
    from almomd.planning import budget, tables

    if args.profile:
        found = deploy.find_profile(args.profile, args.directory)
        if found is None:
            names = ", ".join(deploy.profile_names(args.directory)) or "none"
            return _refuse(
                "budget",
                f"--profile {args.profile}: no profile of that name or path (a directory with "
                f"a config.yaml); profiles of this campaign: {names}",
            )
        args.profile = str(found)
    try:
        if args.actual:
            config = budget.campaign_config(args.directory, args.configfile)
            _, jobs = budget.campaign_plan(config, args.directory, args.profile)
            report = tables.actual_vs_estimate(args.directory, jobs)
            print(json.dumps(report, indent=2) if args.json else tables.format_actual(report))
            return 0
        cores = args.cores or (None if args.profile else os.cpu_count())
        result = budget.plan(
            args.directory,
            args.configfile,
            args.profile,
            cores=cores,
            snakemake=args.snakemake,
            jobs_at_once=args.jobs,
            queue_wait_minutes=args.queue_wait,
        )
    except budget.BudgetError as error:
        print(f"almomd budget: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else tables.format_plan(result))
    return 0


#: the production settings each option of ``almomd md`` gives
MD_OPTIONS = {
    "structure": "--structure",
    "system": "--system",
    "iteration": "--iteration",
    "temperature": "--temperature",
    "steps": "--steps",
    "log_interval": "--interval",
    "threshold_sigmas": "--sigmas",
    "pressure": "--pressure",
}


#: the numeric options of ``almomd md``: option, type, lower limit, limit allowed, an
#: example, help
MD_NUMBERS = (
    ("--iteration", int, 0, True, "--iteration 2", "ensemble (default: last converged, else last)"),
    ("--temperature", float, 0, False, "--temperature 300", "K (default: production.temperature)"),
    ("--steps", int, 1, True, "--steps 1000", "MD steps (default: production.steps)"),
    ("--interval", int, 1, True, "--interval 10", "steps between written frames"),
    ("--sigmas", float, 0, True, "--sigmas 3", "threshold: held-out mean + this many std"),
)


def _md(args: argparse.Namespace) -> int:
    import logging

    from almomd import stages
    from almomd.exploration.production import trained_iterations
    from almomd.settings.schema import read_config_file, validate_config

    config_path = _config_path(args).resolve()
    os.chdir(args.directory)
    if args.structure and not Path(args.structure).is_file():
        return _refuse(
            "md", f"--structure {args.structure}: no such file; give a structure file ASE reads"
        )
    trained = trained_iterations(".")
    if args.iteration is not None and args.iteration not in trained:
        found = ", ".join(map(str, trained)) or "none yet (run the campaign)"
        return _refuse(
            "md", f"--iteration {args.iteration}: no trained ensemble; iterations with one: {found}"
        )
    overrides = {key: getattr(args, option[2:]) for key, option in MD_OPTIONS.items()}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.npt:
        overrides["thermostat"] = "npt"
    if args.stop:
        overrides["stop_above_threshold"] = True
    try:
        if not config_path.is_file():
            raise ConfigError(f"config file {config_path} does not exist; give --configfile")
        raw = read_config_file(config_path)
        if not isinstance(raw, dict) or not isinstance(raw.get("production", {}), dict):
            raise ConfigError("the configuration and its production section must be mappings")
        # the options are checked as config keys: production.temperature, ...
        raw.setdefault("production", {}).update(overrides)
        if args.compile:
            raw.setdefault("exploration", {})["torch_compile"] = True
        # MD labels nothing: the labeler need not be importable here
        config = validate_config(raw, Path.cwd(), check_files=True, check_labeler=False)
    except ConfigError as error:
        for key, option in MD_OPTIONS.items():
            prefix = f"config key production.{key}:"
            if key in overrides and str(error).startswith(prefix):
                return _refuse("md", f"{option}{str(error)[len(prefix) :]}")
        print(f"almomd md: invalid settings ({config_path}): {error}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.observables:
        return _observables(Settings.from_config(config))
    out = Path(args.output)
    try:
        summary = stages.production_md(
            Settings.from_config(config),
            root=".",
            out=str(out),
            out_summary=str(out.with_suffix(".json")),
        )
    except FileNotFoundError as error:
        print(f"almomd md: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def _observables(settings: Settings) -> int:
    from almomd import stages
    from almomd.reporting.observables import observable_lines

    try:
        found = stages.production_observables(
            settings, root=".", out_dir=layout.PRODUCTION_OBSERVABLES
        )
    except FileNotFoundError as error:
        print(f"almomd md: {error}", file=sys.stderr)
        return 1
    rows = {f["condition"]: {k: v for k, v in f["observables"].items() if k != "_protocol"}
            for f in found}  # fmt: skip
    print("\n".join(observable_lines(found[0]["iteration"], rows)))
    print(f"(verdicts, curves and trajectories in {layout.PRODUCTION_OBSERVABLES})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``almomd`` console script."""
    parser = argparse.ArgumentParser(prog="almomd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    directory = {"default": ".", "help": "campaign directory (default: the current one)"}
    configfile = {"help": f"campaign config (default: {CONFIG} in the campaign directory)"}
    init = sub.add_parser(
        "init", help="start a campaign directory: Snakefile, demo config, Slurm profile"
    )
    init.add_argument("directory", help="the campaign directory (created if missing)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.add_argument(
        "--module",
        action="store_true",
        help="a Snakefile that uses the workflow as a Snakemake module (use rule * from almomd)",
    )
    init.set_defaults(func=_init)
    status = sub.add_parser("status", help="per-iteration progress of a campaign")
    status.add_argument("-d", "--directory", **directory)
    status.add_argument("--configfile", **configfile)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=_status)
    validate = sub.add_parser("validate", help="check a config file without running anything")
    validate.add_argument("config", nargs="?", help=configfile["help"])
    validate.add_argument("-d", "--directory", **directory)
    validate.set_defaults(func=_validate)
    plan = sub.add_parser(
        "budget", help="jobs and GPU/CPU-hours per iteration and partition, without running"
    )
    plan.add_argument("-d", "--directory", **directory)
    plan.add_argument("--configfile", **configfile)
    plan.add_argument(
        "--profile", help="Snakemake profile whose resources are planned (default: the rules')"
    )
    plan.add_argument(
        "--cores",
        type=_number(int, 1, True, "--cores 8"),
        help="plan the wall time on one machine with this many cores "
        "(default without --profile: this machine's)",
    )
    plan.add_argument(
        "--jobs",
        type=_number(int, 1, True, "--jobs 50"),
        help="plan the wall time on a cluster with this many jobs at once "
        "(default with a cluster profile: its jobs setting)",
    )
    plan.add_argument(
        "--queue-wait",
        type=_number(float, 0, True, "--queue-wait 10"),
        default=0.0,
        metavar="MINUTES",
        help="on the cluster, minutes each round of jobs waits in the queue before it "
        "starts (your estimate, e.g. the median Start - Submit of `sacct -X -o Submit,Start`; "
        "default 0)",
    )
    plan.add_argument("--json", action="store_true", help="print JSON instead of tables")
    plan.add_argument(
        "--actual", action="store_true", help="compare measured run times with the estimates"
    )
    plan.add_argument(
        "--snakemake",
        action="store_true",
        help="take the jobs from snakemake's own dry run (slower; the same plan)",
    )
    plan.set_defaults(func=_budget)
    md = sub.add_parser(
        "md", help="production MD with a trained ensemble, reporting its uncertainty"
    )
    md.add_argument("-d", "--directory", **directory)
    md.add_argument("--configfile", **configfile)
    md.add_argument("--structure", help="start structure (default: the campaign's)")
    md.add_argument("--system", help="system to start from (default: the first)")
    for option, kind, low, inclusive, example, text in MD_NUMBERS:
        md.add_argument(option, type=_number(kind, low, inclusive, example), help=text)
    md.add_argument("--npt", action="store_true", help="NPT instead of NVT")
    md.add_argument("--pressure", type=float, help="GPa, for --npt")
    md.add_argument("--stop", action="store_true", help="stop when the threshold is crossed")
    md.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the ensemble even for a short run (default: torch_compile auto)",
    )
    md.add_argument(
        "--observables",
        action="store_true",
        help="instead: the iteration's observables at every exploration condition (one MD "
        "trajectory per member) against the campaign's reference dynamics",
    )
    md.add_argument("-o", "--output", default=layout.PRODUCTION_CLI, help="trajectory file")
    md.set_defaults(func=_md)
    args = parser.parse_args(argv)
    if args.command != "init" and not Path(args.directory).is_dir():
        problem = f"-d {args.directory}: no such directory; give the campaign directory"
        return _refuse(args.command, problem)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
