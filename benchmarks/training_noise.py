"""Training noise: how much the held-out error of one ensemble moves with its seeds alone.

A learning curve can only tell two training-set sizes apart where the error
changes more than it does between ensembles trained on the same data with
other seeds. Here the demo's ensemble (4 members of the demo's size, CuI,
GFN1-xTB labels) is trained on the same rattled frames (the first ``N`` of 40)
with ``--seeds`` different seeds per member (initialisation and data order),
for the demo's 12 epochs and for ``--epochs`` epochs with early stopping
(``training.patience``), and judged on 12 held-out frames of larger rattling (as
``early_stopping.py``). Reported per way and size: the held-out force RMSE per
seed, its mean and standard deviation over seeds (the training noise), and how
many noise widths apart the sizes are: ``(mean_small - mean_large) /
sqrt(std_small**2 + std_large**2)``. Last lines: ``training_noise_cv_<epochs>``
(std over mean at the largest size) per way.

Usage: .venv/bin/python benchmarks/training_noise.py [--sizes 16 40] [--seeds 3] [--epochs 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from early_stopping import heldout_rmse
from train_iteration import DEMO, labeled_frames

from almomd.settings.sections import Settings
from almomd.training.trainer import MemberRun, train_members

MEMBERS = 4


def ensemble_error(config: dict, train: list, held: list, size: int, seed: int) -> float:
    """Held-out force RMSE of the demo's ensemble trained on ``train[:size]`` with ``seed``."""
    import ase.io

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ase.io.write(root / "train.extxyz", train[:size], format="extxyz")
        runs = [
            MemberRun(root / "train.extxyz", 1000 * seed + m, 1000 * seed + 100 + m,
                      root / f"member_{m}", root / f"member_{m}.nequip.zip", None)
            for m in range(MEMBERS)
        ]  # fmt: skip
        train_members(Settings.from_config(config), ["Cu", "I"], runs)
        return heldout_rmse([run.model_out for run in runs], held)[0]


def one_seed(ways: dict, train: list, held: list, sizes: list[int], seed: int) -> dict:
    """Every way and size for one seed: ``{(way, size): error}``."""
    return {(way, size): ensemble_error(config, train, held, size, seed)
            for way, config in ways.items() for size in sizes}  # fmt: skip


def main() -> int:
    import os

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 40])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    from almomd.settings.schema import validate_config

    started = time.perf_counter()
    train, held = labeled_frames(max(args.sizes), 1, 0.08), labeled_frames(12, 2, 0.12)
    base = validate_config(yaml.safe_load((DEMO / "config.yaml").read_text()), DEMO,
                           check_files=False)  # fmt: skip
    demo_epochs = base["training"]["max_epochs"]
    ways = {}
    for name, epochs, patience in (
        (f"{demo_epochs} epochs", demo_epochs, base["training"]["patience"]),
        (f"{args.epochs} epochs, patience {args.patience}", args.epochs, args.patience),
    ):
        config = yaml.safe_load(yaml.safe_dump(base))
        config["training"] |= {"max_epochs": epochs, "patience": patience}
        ways[name] = config
    with ProcessPoolExecutor(args.parallel) as pool:
        jobs = [pool.submit(one_seed, ways, train, held, args.sizes, s)
                for s in range(1, args.seeds + 1)]  # fmt: skip
        found = [job.result() for job in jobs]
    print(f"held-out force RMSE (eV/A) of the demo's ensemble, {args.seeds} seeds, "
          f"{len(held)} held-out frames")  # fmt: skip
    cv = {}
    for way in ways:
        stats = {}
        for size in args.sizes:
            errors = np.array([f[(way, size)] for f in found])
            stats[size] = (errors.mean(), errors.std(ddof=1))
            print(f"  {way:>22}, {size:3d} frames: " + " ".join(f"{e:.4f}" for e in errors)
                  + f"  mean {errors.mean():.4f}  std {errors.std(ddof=1):.4f}")  # fmt: skip
        small, large = stats[min(args.sizes)], stats[max(args.sizes)]
        apart = (small[0] - large[0]) / np.hypot(small[1], large[1])
        print(f"  {way:>22}: {min(args.sizes)} and {max(args.sizes)} frames are "
              f"{apart:.1f} noise widths apart")  # fmt: skip
        cv[way.split(",")[0].replace(" ", "_")] = large[1] / large[0]
    print(f"wall time {time.perf_counter() - started:.0f} s")
    for name, value in cv.items():
        print(f"training_noise_cv_{name} {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
