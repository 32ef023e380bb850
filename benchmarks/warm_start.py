"""Warm start against training from scratch: wall time to the same validation error.

Cu, EMT labels, the .test model size. ``D0`` holds 24 rattled frames and
``D1`` adds 12 frames of a 1200 K MD (what an iteration adds). A model trained
on ``D0`` plays the previous iteration's member. On ``D1``:

1. from scratch for ``--epochs`` epochs: its best validation force RMSE is the target;
2. from scratch again, stopped as soon as the target is reached;
3. warm start from the ``D0`` model (``training.warm_start``), stopped at the
   target (at most three times the epochs).

Both stopped runs use the same data split (same data seed) and report the real
wall time of ``nequip-train`` (start-up included). Caveat: the warm model has
seen the ``D0`` frames, some of which are in ``D1``'s validation split, as in
a real campaign. The last line is ``ratio_warm_to_scratch <time ratio>``.
Usage: .venv/bin/python benchmarks/warm_start.py [--epochs 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from ase import units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution  # noqa: E402

from almomd import deploy  # noqa: E402
from almomd.data.frames import labeled_copy, write_frames  # noqa: E402
from almomd.settings.schema import validate_config  # noqa: E402
from almomd.settings.sections import Settings  # noqa: E402
from almomd.training.trainer import train_member  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MONITOR = "val0_epoch/forces_rmse"


def labeled(atoms, name):
    atoms.calc = EMT()
    return labeled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces(), al_id=name)


def datasets(workdir: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    d0 = []
    for i in range(24):
        atoms = base.copy()
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        d0.append(labeled(atoms, f"d0-{i}"))
    hot = base.copy()
    hot.calc = EMT()
    MaxwellBoltzmannDistribution(hot, temperature_K=1200, rng=rng)
    dyn = Langevin(hot, 2 * units.fs, temperature_K=1200, friction=0.02 / units.fs, rng=rng)
    new = []
    for i in range(12):
        dyn.run(20)
        new.append(labeled(hot.copy(), f"d1-{i}"))
    write_frames(workdir / "d0.extxyz", d0)
    write_frames(workdir / "d1.extxyz", d0 + new)
    return workdir / "d0.extxyz", workdir / "d1.extxyz"


def template_stopping_at(workdir: Path, target: float | None) -> Path:
    """The NequIP template, plus an early stop once ``MONITOR`` is at most ``target``."""
    template = yaml.safe_load(deploy.nequip_template().read_text())
    if target is not None:
        template["trainer"]["callbacks"].append({
            "_target_": "lightning.pytorch.callbacks.EarlyStopping",
            "monitor": MONITOR, "stopping_threshold": float(target), "patience": 1000,
        })  # fmt: skip
    path = workdir / f"template_{target}.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def run(config, data, name, workdir, epochs, target=None, init=None):
    config = {**config, "model": {**config["model"]}, "training": {**config["training"]}}
    config["model"]["template"] = str(template_stopping_at(workdir, target))
    config["training"]["max_epochs"] = epochs
    config["training"]["patience"] = 1000
    run_dir = workdir / name
    times = train_member(
        Settings.from_config(config),
        data,
        ["Cu"],
        1,
        2,
        run_dir,
        workdir / f"{name}.nequip.zip",
        init,
    )
    metrics = pd.read_csv(next(run_dir.rglob("metrics.csv")))
    curve = metrics[MONITOR].dropna().to_numpy()
    return times["train_s"], curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    config = validate_config(yaml.safe_load((REPO / ".test" / "config.yaml").read_text()),
                             REPO / ".test")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        d0, d1 = datasets(work)
        run(config, d0, "previous", work, args.epochs)
        previous = work / "previous.nequip.zip"
        _, reference = run(config, d1, "reference", work, args.epochs)
        target = float(reference.min())
        scratch_s, scratch = run(config, d1, "scratch", work, args.epochs, target)
        warm_s, warm = run(config, d1, "warm", work, 3 * args.epochs, target, previous)
    print(
        f"target: validation force RMSE {target:.4f} eV/A "
        f"(best of {args.epochs} epochs from scratch)"
    )
    for name, seconds, curve in (("scratch", scratch_s, scratch), ("warm", warm_s, warm)):
        reached = bool(curve.min() <= target)
        print(f"{name:8s} {seconds:7.1f} s  {len(curve):3d} epochs  first epoch RMSE "
              f"{curve[0]:.4f}  best {curve.min():.4f}  reached target: {reached}")  # fmt: skip
    print(f"ratio_warm_to_scratch {warm_s / scratch_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
