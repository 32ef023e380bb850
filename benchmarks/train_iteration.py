"""Training one iteration's ensemble: where the time goes, and what one process saves.

The demo's settings (CuI, 32 atoms, GFN1-xTB labels, 4 members of the demo's
size, 12 epochs): a training set of rattled frames and a held-out set of other
rattled frames, labeled once. Side by side in one run, every member from the
same rendered NequIP config and derived seeds:

``two processes``
    per member ``nequip-train`` then ``nequip-package``, each a process of its
    own (almomd before this benchmark);
``one process per member``
    per member one process that trains and packages (``almomd.nequip_run``,
    what each ``train_member`` job does now);
``one process``
    every member of the iteration in one process (``almomd.nequip_run`` with
    all members: what packing the members into one job would give).

Each way runs twice, in the order A B C C B A (the load of a shared machine
drifts); reported: the mean wall time of each way for the whole ensemble, its
parts (imports, training, packaging, as the processes measured them) and the
held-out force RMSE of each way's ensemble (equal when the models are: derived
seeds). Last lines: ``ratio_train_time_one_process`` and
``ratio_train_time`` (the workflow's way now against two processes).

Usage: .venv/bin/python benchmarks/train_iteration.py [--members 4] [--frames 40]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "src" / "almomd" / "demo"
BIN = Path(sys.executable).parent


def labeled_frames(n: int, seed: int, stdev: float) -> list:
    """``n`` rattled copies of the demo's CuI supercell, labeled with GFN1-xTB."""
    import ase.io

    from almomd.data import labeled_copy
    from almomd.labelers import Labeler, LabelerSettings
    from almomd.labeling import single_point

    base = ase.io.read(DEMO / "CuI.xyz").repeat((2, 2, 1))
    labeler = Labeler(LabelerSettings(name="tblite", parameters={"method": "GFN1-xTB"}))
    rng = np.random.default_rng(seed)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            atoms = base.copy()
            atoms.positions += rng.normal(0.0, stdev, atoms.positions.shape)
            energy, forces, _ = single_point(atoms, labeler.calculator(Path(tmp)), False)
            frames.append(labeled_copy(atoms, energy, forces, al_id=i))
    return frames


def two_processes(run_dir: Path, out: Path) -> dict[str, float]:
    """nequip-train, then nequip-package: a process each."""
    times = {}
    for step, command in (
        ("train_s", [str(BIN / "nequip-train"), "-cp", str(run_dir), "-cn", "nequip.yaml",
                     f"hydra.run.dir={run_dir / 'hydra'}"]),
        ("package_s", [str(BIN / "nequip-package"), "build",
                       str(run_dir / "hydra" / "best.ckpt"), str(out)]),
    ):  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=run_dir, check=True, capture_output=True)
        times[step] = time.perf_counter() - started
    return times


def one_process(members: list[tuple[Path, Path]]) -> None:
    args = [str(a) for run_dir, out in members for a in (run_dir, "nequip.yaml", out)]
    command = [sys.executable, "-m", "almomd.nequip_run", *args]
    subprocess.run(command, cwd=members[0][0], check=True, capture_output=True)


def children_cpu() -> float:
    """CPU seconds of the finished child processes so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def heldout_rmse(models: list[Path], frames: list) -> float:
    from almomd.ensemble import EnsembleCalculator
    from almomd.evaluation import evaluate

    _, metrics, _ = evaluate(EnsembleCalculator([str(m) for m in models]), frames)
    return float(metrics["force_rmse"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="training frames")
    args = parser.parse_args()
    import ase.io

    from almomd.config import validate_config
    from almomd.training import render_template, template_variables

    started = time.perf_counter()
    train, held = labeled_frames(args.frames, 1, 0.08), labeled_frames(12, 2, 0.12)
    print(f"{args.frames} training and 12 held-out frames labeled in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    config = yaml.safe_load((DEMO / "config.yaml").read_text())
    config = validate_config(config, DEMO, check_files=False)
    ways = ("two processes", "one process per member", "one process")
    order = [*ways, *reversed(ways)]  # mirrored, so that every way sees the same load drift
    seconds = {way: 0.0 for way in ways}
    cpu = {way: 0.0 for way in ways}
    parts = {way: dict.fromkeys(("import_s", "train_s", "package_s"), 0.0) for way in ways}
    rmse = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ase.io.write(root / "train.extxyz", train, format="extxyz")
        for turn, way in enumerate(order):
            members = []
            for m in range(args.members):
                run_dir = root / f"{turn}_{way.replace(' ', '_')}" / f"member_{m}"
                run_dir.mkdir(parents=True)
                variables = template_variables(config, root / "train.extxyz", ["Cu", "I"],
                                               100 + m, 200 + m)  # fmt: skip
                rendered = render_template(None, variables)
                (run_dir / "nequip.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
                members.append((run_dir, run_dir / "member.nequip.zip"))
            started, cpu_before = time.perf_counter(), children_cpu()
            if way == "two processes":
                times = [two_processes(run_dir, out) for run_dir, out in members]
            else:
                for group in [[m] for m in members] if way.endswith("member") else [members]:
                    one_process(group)
                times = [json.loads((d / "times.json").read_text()) for d, _ in members]
            elapsed = time.perf_counter() - started
            seconds[way] += elapsed / 2
            cpu[way] += (children_cpu() - cpu_before) / 2
            for key in parts[way]:
                parts[way][key] += sum(t.get(key, 0.0) for t in times) / 2
            rmse[way] = heldout_rmse([out for _, out in members], held)
            print(f"{way:>24}: {elapsed:6.1f} s wall  held-out force RMSE {rmse[way]:.4f} eV/A",
                  flush=True)  # fmt: skip
    print("mean of the two turns: wall, CPU (in-process parts: imports, training, packaging):")
    for way in ways:
        print(f"{way:>24}: {seconds[way]:6.1f} s  {cpu[way]:6.1f} s CPU  ("
              + ", ".join(f"{k} {v:.1f}" for k, v in parts[way].items()) + ")")  # fmt: skip
    base = seconds["two processes"]
    print(f"{args.members} members, {config['training']['max_epochs']} epochs, "
          f"{args.frames} frames; held-out RMSE equal in every way: "
          f"{len({round(v, 6) for v in rmse.values()}) == 1}")  # fmt: skip
    for way in ways[1:]:
        print(f"CPU time {way} / two processes: {cpu[way] / cpu['two processes']:.3f}")
    print(f"ratio_train_time_one_process {seconds['one process'] / base:.3f}")
    print(f"ratio_train_time {seconds['one process per member'] / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
