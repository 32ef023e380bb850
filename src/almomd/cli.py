"""The ``almomd`` command line: status, validation, budget and production MD of a campaign."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from almomd import deploy, layout
from almomd.errors import ConfigError
from almomd.settings import systems
from almomd.settings.history import changed_settings
from almomd.settings.schema import load_config
from almomd.settings.sections import Settings

CONFIG = "config/config.yaml"  # a campaign directory's settings (see almomd init)


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
    from almomd.reporting.status import campaign_status, format_table

    rows = campaign_status(args.directory)
    changes = {}
    config_path = _config_path(args)
    if config_path.is_file():
        try:
            changes = changed_settings(args.directory, load_config(config_path, False))
        except ConfigError as error:
            print(f"warning: {config_path}: {error}", file=sys.stderr)
    if args.json:  # the rows of status.json, plus what changed since an iteration ran
        for row in rows:
            if row["iteration"] in changes:
                row["settings_changed"] = changes[row["iteration"]]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"campaign in {Path(args.directory).resolve()}")
    print(format_table(rows))
    for iteration, lines in changes.items():
        print(
            f"warning: iteration {iteration} ran with other settings than {config_path} now "
            "(changes apply to steps not yet run):\n  " + "\n  ".join(lines),
            file=sys.stderr,
        )
    return 0


def _validate(args: argparse.Namespace) -> int:
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


def describe_systems(config: dict, root: Path) -> str:
    """One line per system: atoms, composition and walkers (what a campaign will explore)."""
    from almomd.settings.campaign import walkers
    from almomd.settings.files import structures

    built = structures(config, root)
    lines = []
    for name, atoms in built.items():
        own = [w for w in walkers(config) if w.system == name]
        temperatures = sorted({w.temperature for w in own})
        biased = " biased" if systems.exploration(config, name)["bias"] else ""
        lines.append(
            f"system {name}: {len(atoms)} atoms ({atoms.get_chemical_formula()}), "
            f"{len(own)}{biased} walker(s) at {', '.join(f'{t:g}' for t in temperatures)} K"
        )
    return "\n".join(lines)


def _budget(args: argparse.Namespace) -> int:
    from almomd.planning import budget, tables

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


def _md(args: argparse.Namespace) -> int:
    import logging

    import yaml

    from almomd import stages
    from almomd.settings.schema import validate_config

    config_path = _config_path(args).resolve()
    os.chdir(args.directory)
    overrides = {
        "structure": args.structure,
        "system": args.system,
        "iteration": args.iteration,
        "temperature": args.temperature,
        "steps": args.steps,
        "log_interval": args.interval,
        "threshold_sigmas": args.sigmas,
        "pressure": args.pressure,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.npt:
        overrides["thermostat"] = "npt"
    if args.stop:
        overrides["stop_above_threshold"] = True
    try:
        raw = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
        if raw is None:
            raise ConfigError(f"config file {config_path} does not exist; give --configfile")
        # the options are checked as config keys: production.temperature, ...
        raw.setdefault("production", {}).update(overrides)
        if args.compile:
            raw.setdefault("exploration", {})["torch_compile"] = True
        # MD labels nothing: the labeler need not be importable here
        config = validate_config(raw, Path.cwd(), check_files=True, check_labeler=False)
    except ConfigError as error:
        print(f"almomd md: invalid settings ({config_path} and options): {error}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
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
        type=int,
        help="plan the wall time on one machine with this many cores "
        "(default without --profile: this machine's)",
    )
    plan.add_argument(
        "--jobs",
        type=int,
        help="plan the wall time on a cluster with this many jobs at once "
        "(default with a cluster profile: its jobs setting)",
    )
    plan.add_argument(
        "--queue-wait",
        type=float,
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
    md.add_argument("--iteration", type=int, help="ensemble (default: last converged, else last)")
    md.add_argument("--temperature", type=float, help="K (default: production.temperature)")
    md.add_argument("--steps", type=int, help="MD steps (default: production.steps)")
    md.add_argument("--interval", type=int, help="steps between written frames")
    md.add_argument("--npt", action="store_true", help="NPT instead of NVT")
    md.add_argument("--pressure", type=float, help="GPa, for --npt")
    md.add_argument("--sigmas", type=float, help="threshold: held-out mean + this many std")
    md.add_argument("--stop", action="store_true", help="stop when the threshold is crossed")
    md.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the ensemble even for a short run (default: torch_compile auto)",
    )
    md.add_argument("-o", "--output", default=layout.PRODUCTION_CLI, help="trajectory file")
    md.set_defaults(func=_md)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
