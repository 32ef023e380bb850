"""The ``almomd`` command line: status, validation, budget and production MD of a campaign."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from almomd.config import ConfigError, load_config
from almomd.status import campaign_status, format_table


def _status(args: argparse.Namespace) -> int:
    results = Path(args.directory) / "results"
    rows = campaign_status(results)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"campaign in {results.resolve()}")
        print(format_table(rows))
    return 0


def _validate(args: argparse.Namespace) -> int:
    try:
        load_config(args.config)
    except ConfigError as error:
        print(f"invalid configuration {args.config}: {error}", file=sys.stderr)
        return 1
    print(f"{args.config}: valid")
    return 0


def _budget(args: argparse.Namespace) -> int:
    from almomd import budget

    try:
        if args.actual:
            jobs = budget.dry_run(args.directory, args.configfile, args.profile, forceall=True)
            report = budget.actual_vs_estimate(args.directory, jobs)
            print(json.dumps(report, indent=2) if args.json else budget.format_actual(report))
            return 0
        result = budget.plan(args.directory, args.configfile, args.profile)
    except budget.BudgetError as error:
        print(f"almomd budget: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2) if args.json else budget.format_plan(result))
    return 0


def _md(args: argparse.Namespace) -> int:
    import logging
    import os

    from almomd import stages

    os.chdir(args.directory)
    try:
        config = load_config(args.configfile)
    except ConfigError as error:
        print(f"invalid configuration {args.configfile}: {error}", file=sys.stderr)
        return 1
    overrides = {
        "structure": args.structure,
        "iteration": args.iteration,
        "temperature": args.temperature,
        "steps": args.steps,
        "log_interval": args.interval,
        "threshold_sigmas": args.sigmas,
        "pressure": args.pressure,
    }
    config["production"].update({k: v for k, v in overrides.items() if v is not None})
    if args.npt:
        config["production"]["thermostat"] = "npt"
    if args.stop:
        config["production"]["stop_above_threshold"] = True
    if args.compile:
        config["exploration"]["torch_compile"] = True
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out = Path(args.output)
    try:
        summary = stages.production(config, "results", str(out), str(out.with_suffix(".json")))
    except FileNotFoundError as error:
        print(f"almomd md: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``almomd`` console script."""
    parser = argparse.ArgumentParser(prog="almomd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="per-iteration progress of a campaign")
    status.add_argument("-d", "--directory", default=".", help="Snakemake working directory")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=_status)
    validate = sub.add_parser("validate", help="check a config file without running anything")
    validate.add_argument("config", help="config file, e.g. config/config.yaml")
    validate.set_defaults(func=_validate)
    plan = sub.add_parser(
        "budget", help="jobs and GPU/CPU-hours per iteration and partition, without running"
    )
    plan.add_argument("-d", "--directory", default=".", help="Snakemake working directory")
    plan.add_argument("--configfile", help="campaign config (default: the Snakefile's)")
    plan.add_argument("--profile", help="Snakemake profile whose resources are planned")
    plan.add_argument("--json", action="store_true", help="print JSON instead of tables")
    plan.add_argument(
        "--actual", action="store_true", help="compare measured run times with the estimates"
    )
    plan.set_defaults(func=_budget)
    md = sub.add_parser(
        "md", help="production MD with a trained ensemble, reporting its uncertainty"
    )
    md.add_argument("-d", "--directory", default=".", help="Snakemake working directory")
    md.add_argument("--configfile", default="config/config.yaml", help="campaign config")
    md.add_argument("--structure", help="start structure (default: the campaign's)")
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
        help="torch.compile the ensemble (exploration.torch_compile): worth it for long runs",
    )
    md.add_argument(
        "-o", "--output", default="results/production/md_cli.extxyz", help="trajectory file"
    )
    md.set_defaults(func=_md)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
