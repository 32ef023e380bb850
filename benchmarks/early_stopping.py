"""Early stopping against a fixed epoch count, judged on held-out force error.

The demo's settings (CuI, 32 atoms, GFN1-xTB labels, 4 members of the demo's
size, 40 rattled training frames, 12 held-out frames of larger rattling), the
whole ensemble trained in one process each way (``training.members_per_job``
= 4), side by side in one run:

``12 epochs``
    the demo's ``max_epochs: 12`` (its default patience, 20, never stops it);
``E epochs``
    ``max_epochs: E`` (default 40) with patience above it: never stopped;
``E epochs, patience P``
    the same with ``training.patience: P`` (default 10 and 5): Lightning's
    EarlyStopping on the validation loss (10 % of each member's subset).

Each way runs twice, in mirrored order (a shared machine's load drifts); the
held-out force RMSE is the same both turns (derived seeds, CPU). Reported: the
mean time, the epochs each member ran, and the held-out force RMSE with a 95 %
bootstrap interval over the held-out frames. The default patience should be
the smallest that keeps the held-out error of the unstopped run. Last lines:
``ratio_heldout_rmse_patience_P`` and ``ratio_train_time_patience_P`` against
the unstopped run, per patience.

Usage: .venv/bin/python benchmarks/early_stopping.py [--epochs 40] [--patience 10 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from train_iteration import DEMO, labeled_frames, member_runs

from almomd.settings.sections import Settings
from almomd.training.trainer import train_members


def heldout_rmse(models: list[Path], frames: list) -> tuple[float, float, float]:
    """The ensemble's held-out force RMSE and its 95 % bootstrap interval over frames."""
    from almomd.ensemble.calculator import EnsembleCalculator, predict
    from almomd.evaluation.statistics import rmse, rmse_interval

    calculator = EnsembleCalculator([str(m) for m in models])
    sq_sums, counts = [], []
    for atoms in frames:
        error = predict(calculator, atoms)[1] - atoms.get_forces()
        sq_sums.append(float(np.sum(error**2)))
        counts.append(error.size)
    low, high = rmse_interval(np.array(sq_sums), np.array(counts), np.random.default_rng(0))
    return rmse(np.array(sq_sums), np.array(counts)), low, high


def epochs_run(run_dir: Path) -> int:
    """The epochs a member trained (Lightning's metrics.csv of its run)."""
    import pandas as pd

    found = sorted(Path(run_dir, "hydra").rglob("metrics.csv"))
    if not found:
        return -1
    table = pd.read_csv(found[-1])
    return int(table["epoch"].max()) + 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, nargs="+", default=[10, 5])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    import ase.io

    from almomd.settings.schema import validate_config

    started = time.perf_counter()
    train, held = labeled_frames(args.frames, 1, 0.08), labeled_frames(12, 2, 0.12)
    print(f"{args.frames} training and {len(held)} held-out frames labeled in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    base = validate_config(yaml.safe_load((DEMO / "config.yaml").read_text()), DEMO,
                           check_files=False)  # fmt: skip
    demo_epochs = base["training"]["max_epochs"]
    ways = {f"{demo_epochs} epochs": (demo_epochs, base["training"]["patience"]),
            f"{args.epochs} epochs": (args.epochs, args.epochs + 1)}  # fmt: skip
    for patience in args.patience:
        ways[f"{args.epochs} epochs, patience {patience}"] = (args.epochs, patience)
    order = [*ways, *reversed(ways)]
    seconds = dict.fromkeys(ways, 0.0)
    result, epochs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ase.io.write(root / "train.extxyz", train, format="extxyz")
        for turn, way in enumerate(order):
            config = yaml.safe_load(yaml.safe_dump(base))
            config["training"]["max_epochs"], config["training"]["patience"] = ways[way]
            work = root / f"{turn}"
            runs = member_runs(root / "train.extxyz", work, args.members)
            started = time.perf_counter()
            train_members(Settings.from_config(config), ["Cu", "I"], runs)
            elapsed = time.perf_counter() - started
            seconds[way] += elapsed / 2
            epochs[way] = [epochs_run(Path(run.run_dir)) for run in runs]
            result[way] = heldout_rmse([run.model_out for run in runs], held)
            print(f"{way:>28}: {elapsed:6.1f} s  epochs {epochs[way]}  held-out force RMSE "
                  f"{result[way][0]:.4f} eV/A", flush=True)  # fmt: skip
    print("mean of the two turns; held-out force RMSE [95 % bootstrap over frames]:")
    for way in ways:
        rmse, low, high = result[way]
        print(f"{way:>28}: {seconds[way]:6.1f} s  epochs {epochs[way]}  "
              f"{rmse:.4f} [{low:.4f}, {high:.4f}] eV/A")  # fmt: skip
    full = f"{args.epochs} epochs"
    for patience in args.patience:
        way = f"{args.epochs} epochs, patience {patience}"
        print(f"ratio_heldout_rmse_patience_{patience} {result[way][0] / result[full][0]:.3f}")
        print(f"ratio_train_time_patience_{patience} {seconds[way] / seconds[full]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
