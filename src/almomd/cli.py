"""The ``almomd`` command line: campaign status and config validation."""

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
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
