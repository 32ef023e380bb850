"""Warm start over a whole campaign: training time and test error per iteration.

Two campaigns of the .test Cu/EMT system run side by side (one core each,
through the real snakemake command): exploration at 1200 K, initial data at
600 K, active selection of 4 frames per iteration, and 24 frames of an EMT MD
at 1200 K as the test set and the held-out set. They differ in training only:

- ``scratch``: every iteration trains its members from scratch for
  ``--epochs`` epochs (early stopping may end it sooner);
- ``warm``: from iteration 1 on, every member fine-tunes the same member of
  the previous iteration (``training.warm_start``) for ``--warm-epochs``
  epochs (``training.warm_start_epochs``).

Iteration 0 is the same in both. Prints, per iteration, the summed wall time
of the training jobs (Snakemake's benchmark files, ``nequip-train`` start-up
included) and the held-out force RMSE of both; the last lines are
``ratio_warm_train_time <warm / scratch, training of iterations 1 and on>``
and ``ratio_warm_final_rmse <warm / scratch, last iteration>``.
Usage: .venv/bin/python benchmarks/warm_start_campaign.py [--seed 7]
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

from almomd import deploy
from almomd.reporting.report import stage_timings

REPO = Path(__file__).resolve().parents[1]
HOT = 1200.0  # K; the initial data's MD runs at 600 K


def hot_frames(path: Path, n: int = 24) -> None:
    """EMT-labeled frames of a Langevin MD of Cu at ``HOT`` K."""
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


def campaign_config(seed: int, iterations: int) -> dict:
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["seed"] = seed
    config["max_iterations"] = iterations
    config["test_set"] = {"file": "hot.extxyz"}
    config["heldout"] = {"source": "file", "file": "hot.extxyz"}
    config["convergence"] = {"force_rmse": None, "uncertain_fraction": None}
    config["exploration"]["temperatures"] = [HOT, HOT]
    config["exploration"]["steps"] = 100
    config["selection"].update(max_frames=4)
    return config


def start(workdir: Path, config: dict, frames: Path) -> subprocess.Popen:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    shutil.copy(REPO / ".test" / "cu.xyz", workdir / "cu.xyz")
    shutil.copy(frames, workdir / "hot.extxyz")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [str(Path(sys.executable).parent / "snakemake"),
               "--snakefile", str(deploy.snakefile()),
               "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
               "--cores", "1", "--quiet"]  # fmt: skip
    log = (workdir / "snakemake.out").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


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


def training_seconds(workdir: Path) -> dict[str, float]:
    """Summed wall time of the training jobs, per iteration (``iter_I``)."""
    timings = stage_timings(workdir / "benchmarks")
    train = timings[timings["stage"] == "train"]
    return train.groupby("iteration")["seconds"].sum().to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--warm-epochs", type=int, default=6)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "warm_start_campaign"))
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test_file = out / "hot.extxyz"
    hot_frames(test_file)
    runs = {}
    for mode in ("scratch", "warm"):
        config = campaign_config(args.seed, args.iterations)
        config["training"].update(max_epochs=args.epochs, patience=args.epochs)
        if mode == "warm":
            config["training"].update(warm_start=True, warm_start_epochs=args.warm_epochs)
        workdir = out / mode
        runs[mode] = (workdir, start(workdir, config, test_file))
    status = finish(runs)
    if status is None:
        return 1
    seconds = {m: training_seconds(w) for m, (w, _) in runs.items()}
    print(f"seed {args.seed}: scratch {args.epochs} epochs, warm {args.warm_epochs} epochs")
    heads = ("train s scratch", "train s warm", "F rmse scratch", "F rmse warm", "labels")
    print(f"{'iter':>4} " + " ".join(f"{h:>15}" for h in heads))
    for s, w in zip(status["scratch"], status["warm"], strict=True):
        name = f"iter_{s['iteration']}"
        print(f"{s['iteration']:4d} {seconds['scratch'][name]:15.1f} {seconds['warm'][name]:15.1f} "
              f"{s['heldout_force_rmse']:15.4f} {w['heldout_force_rmse']:15.4f} "
              f"{s['n_train']:>7d}/{w['n_train']:<7d}")  # fmt: skip
    later = {m: sum(v for k, v in seconds[m].items() if k != "iter_0") for m in seconds}
    print(f"training time of iterations 1 and on: scratch {later['scratch']:.1f} s, "
          f"warm {later['warm']:.1f} s")  # fmt: skip
    print(f"ratio_warm_train_time {later['warm'] / later['scratch']:.3f}")
    final = {m: status[m][-1]["heldout_force_rmse"] for m in status}
    print(f"ratio_warm_final_rmse {final['warm'] / final['scratch']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
