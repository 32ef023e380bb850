"""Time `almomd budget` on a large plan: 20 iterations x 16 members x 8 walkers x 8 batches.

Usage: .venv/bin/python benchmarks/budget_plan.py [--no-snakemake]
Side by side in one run, with the Slurm profile: the plan from the config (the
default) and from Snakemake's dry runs (``--snakemake``), each for a fresh
campaign and for a started one (a ``results`` directory: remaining and whole
plan). Checks that both give the same jobs and hours. Last line:
``plan_seconds <s>``, the wall time of ``almomd budget`` for the started campaign.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-snakemake", action="store_true", help="skip the dry-run plans")
    args = parser.parse_args()
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["max_iterations"] = 20
    config["ensemble"].update(n_subsets=4, n_seeds=4)
    config["exploration"]["temperatures"] = [300 + 100 * i for i in range(8)]
    config["labeler"]["n_batches"] = 8
    ways = {"config": []} if args.no_snakemake else {"config": [], "snakemake": ["--snakemake"]}
    times, plans = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copy(REPO / ".test" / "cu.xyz", workdir / "cu.xyz")
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        command = [
            str(BIN / "almomd"), "budget", "-d", str(workdir), "--json",
            "--configfile", str(workdir / "config.yaml"),
            "--profile", str(REPO / "profiles" / "slurm"),
        ]  # fmt: skip
        for case in ("fresh", "started"):
            if case == "started":
                (workdir / "results").mkdir()
            for way, extra in ways.items():
                started = time.perf_counter()
                result = subprocess.run([*command, *extra], capture_output=True, text=True)
                times[way, case] = time.perf_counter() - started
                if result.returncode != 0:
                    sys.exit(f"almomd budget {' '.join(extra)} failed:\n{result.stderr}")
                plans[way, case] = json.loads(result.stdout)
    total = plans["config", "started"]["campaign"]["total"]
    print("plan: 20 iterations x 16 members x 8 walkers x 8 label batches, Slurm profile")
    print(f"jobs {total['n_jobs']}  gpu_h {total['gpu_hours']:.1f}  cpu_h {total['cpu_hours']:.1f}")
    for (way, case), seconds in times.items():
        print(f"  jobs from {way:>9}, {case:>7} campaign: {seconds:6.2f} s")
    if not args.no_snakemake:
        keys = ("remaining", "done", "campaign", "labels", "expected")
        same = all(
            plans["config", c][k] == plans["snakemake", c][k]
            for c in ("fresh", "started")
            for k in keys
        )
        print(f"same plan from the config and from snakemake: {same}")
        ratio = times["config", "started"] / times["snakemake", "started"]
        print(f"ratio_config_to_snakemake {ratio:.3f}")
    print(f"plan_seconds {times['config', 'started']:.2f}")


if __name__ == "__main__":
    main()
