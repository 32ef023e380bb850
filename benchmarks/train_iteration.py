"""Training one iteration's ensemble: where the time goes, and what packing saves.

The demo's settings (CuI, 32 atoms, GFN1-xTB labels, 4 members of the demo's
size, 12 epochs): a training set of rattled frames and a held-out set of other
rattled frames, labeled once. Side by side in one run, every member from the
same rendered NequIP config and derived seeds:

``two processes``
    per member ``nequip-train`` then ``nequip-package``, each a process of its
    own (almomd before issue 16);
``members_per_job 1``
    per member one process that trains and packages (``almomd.nequip_run``:
    what a ``train_member`` job does);
``members_per_job P``
    the members in packs of P, one process per pack (what the ``train_pack_N``
    jobs of ``training.members_per_job: P`` do, through
    :func:`almomd.training.train_members`); P = 2 (the demo's setting) and all.

The jobs run one after the other, so each way's time is the summed job time of
training the iteration (what a campaign pays for; side by side on several cores
the wall time shrinks for every way alike). Each way runs twice, in the order
A B C D D C B A (the load of a shared machine drifts); reported: the mean time
of each way, its parts (imports, training, packaging, as the processes measured
them) and the held-out force RMSE of each way's ensemble (equal when the models
are: derived seeds). Last lines: ``ratio_train_time_one_process`` (all members
in one job) and ``ratio_train_time`` (the demo's ``members_per_job``, against
two processes per member).

Usage: .venv/bin/python benchmarks/train_iteration.py [--members 4] [--frames 40]
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(REPO / "src"))

from almomd.training import (  # noqa: E402
    MemberRun,
    render_template,
    template_variables,
    train_members,
)


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


def member_runs(train_file: Path, work: Path, n: int) -> list[MemberRun]:
    """``n`` members on ``train_file`` with fixed seeds, run and packaged under ``work``."""
    return [
        MemberRun(train_file, 100 + m, 200 + m, work / f"member_{m}",
                  work / f"member_{m}.nequip.zip")
        for m in range(n)
    ]  # fmt: skip


def two_processes(config: dict, run: MemberRun) -> dict[str, float]:
    """nequip-train, then nequip-package: a process each, as almomd did before."""
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True)
    variables = template_variables(config, Path(run.train_file), ["Cu", "I"], run.seed,
                                   run.data_seed)  # fmt: skip
    rendered = render_template(None, variables)
    (run_dir / "nequip.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
    times = {}
    for step, command in (
        ("train_s", [str(BIN / "nequip-train"), "-cp", str(run_dir), "-cn", "nequip.yaml",
                     f"hydra.run.dir={run_dir / 'hydra'}"]),
        ("package_s", [str(BIN / "nequip-package"), "build",
                       str(run_dir / "hydra" / "best.ckpt"), str(run.model_out)]),
    ):  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=run_dir, check=True, capture_output=True)
        times[step] = time.perf_counter() - started
    return times


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

    started = time.perf_counter()
    train, held = labeled_frames(args.frames, 1, 0.08), labeled_frames(12, 2, 0.12)
    print(f"{args.frames} training and 12 held-out frames labeled in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    config = yaml.safe_load((DEMO / "config.yaml").read_text())
    config = validate_config(config, DEMO, check_files=False)
    demo_pack = config["training"]["members_per_job"]
    sizes = sorted({1, demo_pack, args.members})
    ways = ("two processes", *(f"members_per_job {size}" for size in sizes))
    order = [*ways, *reversed(ways)]  # mirrored, so that every way sees the same load drift
    seconds = {way: 0.0 for way in ways}
    cpu = {way: 0.0 for way in ways}
    parts = {way: dict.fromkeys(("import_s", "train_s", "package_s"), 0.0) for way in ways}
    rmse = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ase.io.write(root / "train.extxyz", train, format="extxyz")
        for turn, way in enumerate(order):
            work = root / f"{turn}_{way.replace(' ', '_')}"
            runs = member_runs(root / "train.extxyz", work, args.members)
            started, cpu_before = time.perf_counter(), children_cpu()
            if way == "two processes":
                times = [two_processes(config, run) for run in runs]
            else:
                size = int(way.split()[-1])
                times = []
                for first in range(0, len(runs), size):
                    times += train_members(config, ["Cu", "I"], runs[first : first + size])
            elapsed = time.perf_counter() - started
            seconds[way] += elapsed / 2
            cpu[way] += (children_cpu() - cpu_before) / 2
            for key in parts[way]:
                parts[way][key] += sum(t.get(key, 0.0) for t in times) / 2
            rmse[way] = heldout_rmse([run.model_out for run in runs], held)
            print(f"{way:>24}: {elapsed:6.1f} s  held-out force RMSE {rmse[way]:.4f} eV/A",
                  flush=True)  # fmt: skip
    print("mean of the two turns: time, CPU (in-process parts: imports, training, packaging):")
    for way in ways:
        print(f"{way:>24}: {seconds[way]:6.1f} s  {cpu[way]:6.1f} s CPU  ("
              + ", ".join(f"{k} {v:.1f}" for k, v in parts[way].items()) + ")")  # fmt: skip
    base = seconds["two processes"]
    print(f"{args.members} members, {config['training']['max_epochs']} epochs, "
          f"{args.frames} frames; held-out RMSE equal in every way: "
          f"{len({round(v, 6) for v in rmse.values()}) == 1}")  # fmt: skip
    for way in ways[1:]:
        print(f"{way} / two processes: time {seconds[way] / base:.3f}, "
              f"CPU {cpu[way] / cpu['two processes']:.3f}")  # fmt: skip
    print(f"the demo trains with members_per_job {demo_pack}")
    print(f"ratio_train_time_one_process {seconds[f'members_per_job {args.members}'] / base:.3f}")
    print(f"ratio_train_time {seconds[f'members_per_job {demo_pack}'] / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
