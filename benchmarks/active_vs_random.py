"""Active learning against random sampling, side by side, on the .test Cu/EMT system.

Two campaigns share everything (seed, initial data, test set, budget of labels
per iteration) except how frames are picked from the exploration trajectories:
``selection.method: active`` (uncertainty) or ``random`` (uniform, ALmoMD's
``calc_type: random``). Exploration runs at a temperature above the initial
data's, and the test set is an EMT MD at that temperature, so that the test
asks for what exploration has to find. Both campaigns run at once (one core
each) through the real snakemake command.

Prints labels used and test force RMSE per iteration for both, and the ratio
of final errors. Usage: .venv/bin/python benchmarks/active_vs_random.py [--seeds 7 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import yaml
from ase import units
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

REPO = Path(__file__).resolve().parents[1]
HOT = 1200.0  # K; the initial data's MD runs at 600 K


def hot_test_set(path: Path, n: int = 24) -> None:
    """EMT-labeled frames of a Langevin MD of Cu at ``HOT`` K (the test set)."""
    atoms = ase.io.read(REPO / ".test" / "cu.xyz").repeat((2, 2, 2))
    atoms.calc = EMT()
    rng = np.random.default_rng(2024)
    MaxwellBoltzmannDistribution(atoms, temperature_K=HOT, rng=rng)
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=HOT, friction=0.02 / units.fs, rng=rng)
    dyn.run(200)  # equilibrate
    frames = []
    for _ in range(n):
        dyn.run(25)
        frame = atoms.copy()
        frame.calc = EMT()
        frame.get_potential_energy()
        frames.append(frame)
    ase.io.write(path, frames, format="extxyz")


def campaign_config(method: str, seed: int, iterations: int) -> dict:
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["seed"] = seed
    config["max_iterations"] = iterations
    config["test_set"] = {"file": "test_hot.extxyz"}
    config["exploration"]["temperatures"] = [HOT, HOT]
    config["exploration"]["steps"] = 100
    config["selection"].update(method=method, max_frames=4)
    return config


def start(workdir: Path, config: dict, test_file: Path) -> subprocess.Popen:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(REPO / ".test" / "cu.xyz", workdir / "cu.xyz")
    shutil.copy(test_file, workdir / "test_hot.extxyz")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = Path(sys.executable).parent / "snakemake"
    command = [str(snakemake), "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
               "--cores", "1", "--quiet"]  # fmt: skip
    log = (workdir / "snakemake.out").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def prepare(out: Path) -> Path:
    """One thread per process; ``out`` created; the hot test set written there."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    out.mkdir(parents=True, exist_ok=True)
    test_file = out / "test_hot.extxyz"
    hot_test_set(test_file)
    return test_file


def finish(runs: dict[str, tuple[Path, subprocess.Popen]]) -> dict[str, list] | None:
    """Wait for the campaigns; their ``status.json`` by name, None if one failed."""
    for name, (workdir, process) in runs.items():
        if process.wait() != 0:
            print(f"{name} campaign failed; see {workdir / 'snakemake.out'}")
            return None
    return {
        name: json.loads((workdir / "results" / "status.json").read_text())
        for name, (workdir, _) in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "active_vs_random"))
    args = parser.parse_args()
    out = Path(args.out)
    test_file = prepare(out)
    finals = {"active": [], "random": []}
    for seed in args.seeds:
        runs = {}
        for method in ("active", "random"):
            workdir = out / f"{method}_seed{seed}"
            runs[method] = (
                workdir,
                start(workdir, campaign_config(method, seed, args.iterations), test_file),
            )
        status = finish(runs)
        if status is None:
            return 1
        print(
            f"seed {seed}: test set = {len(ase.io.read(test_file, ':'))} EMT frames at {HOT:.0f} K"
        )
        heads = ("labels active", "F rmse active", "labels random", "F rmse random")
        print(f"{'iter':>4} " + " ".join(f"{h:>14}" for h in heads))
        for a, r in zip(status["active"], status["random"], strict=True):
            print(f"{a['iteration']:4d} {a['n_train']:14d} {a['test_force_rmse']:14.4f} "
                  f"{r['n_train']:14d} {r['test_force_rmse']:14.4f}")  # fmt: skip
        for method in finals:
            finals[method].append(status[method][-1]["test_force_rmse"])
    active, random = np.mean(finals["active"]), np.mean(finals["random"])
    print(f"final test force RMSE (mean over seeds {args.seeds}): ", end="")
    print(f"active {active:.4f}, random {random:.4f} eV/A")
    print(f"ratio_active_to_random {active / random:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
