"""Time `almomd budget` on a large plan: 20 iterations x 16 members x 8 walkers x 8 batches.

Usage: .venv/bin/python benchmarks/budget_plan.py
Prints the number of planned jobs and the wall time of the whole command (two
Snakemake dry runs: the remaining jobs and the whole campaign) and of one dry run.
"""

from __future__ import annotations

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
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["max_iterations"] = 20
    config["ensemble"].update(n_subsets=4, n_seeds=4)
    config["exploration"]["temperatures"] = [300 + 100 * i for i in range(8)]
    config["labeler"]["n_batches"] = 8
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copy(REPO / ".test" / "cu.xyz", workdir / "cu.xyz")
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        command = [
            str(BIN / "almomd"), "budget", "-d", str(workdir), "--json",
            "--configfile", str(workdir / "config.yaml"),
            "--profile", str(REPO / "src" / "almomd" / "workflow" / "profiles" / "slurm"),
        ]  # fmt: skip
        times = {}
        for case in ("fresh", "resumed"):
            if case == "resumed":  # a started campaign: remaining and whole plan side by side
                (workdir / "results").mkdir()
            started = time.perf_counter()
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            times[case] = time.perf_counter() - started
        plan = json.loads(result.stdout)
    total = plan["campaign"]["total"]
    print("plan: 20 iterations x 16 members x 8 walkers x 8 label batches")
    print(f"jobs {total['n_jobs']}  gpu_h {total['gpu_hours']:.1f}  cpu_h {total['cpu_hours']:.1f}")
    print(f"budget_fresh_s {times['fresh']:.2f}  (one dry run)")
    print(f"budget_started_s {times['resumed']:.2f}  (two dry runs side by side)")


if __name__ == "__main__":
    main()
