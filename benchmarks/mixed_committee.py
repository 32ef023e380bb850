"""Does a committee of NequIP and Allegro members rank errors better than an all-NequIP one?

Cu, EMT labels, the .test model size. Training data: 24 rattled frames and 12
frames of a 600 K EMT MD; held-out truth: 24 frames of a 1000 K EMT MD (hotter
than any training frame, so errors vary). Per seed, four NequIP members and two
Allegro members are trained (each on its own 80 % subsample, the same epochs);
the NequIP committee is the four NequIP members, the mixed one the first two
NequIP members plus the two Allegro members, so both have four members and the
same training budget in epochs (their measured training seconds are printed).
On the held-out frames each committee reports Spearman's rho between its
uncertainty and the frame's true force RMSE (``force_max`` and ``force_mean``)
with a 95 % bootstrap interval, and the force RMSE of its mean. Over seeds, the
median difference mixed minus NequIP with a bootstrap interval over seeds.

The last line is ``delta_spearman_mixed_minus_nequip <median difference>``.
Usage: .venv/bin/python benchmarks/mixed_committee.py [--seeds 1 2 3] [--epochs 12]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from ase import units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution  # noqa: E402

from almomd.data.frames import labeled_copy, subsample, write_frames  # noqa: E402
from almomd.ensemble.calculator import EnsembleCalculator  # noqa: E402
from almomd.evaluation import statistics  # noqa: E402
from almomd.evaluation.test_set import evaluate  # noqa: E402
from almomd.settings.schema import validate_config  # noqa: E402
from almomd.settings.sections import Settings  # noqa: E402
from almomd.training import trainer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
METRICS = ("force_max", "force_mean")


def labeled(atoms, tag: str):
    atoms = atoms.copy()
    atoms.calc = EMT()
    return labeled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces(), al_id=tag)


def md_frames(temperature: float, n: int, seed: int, tag: str) -> list:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.calc = EMT()
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=temperature, friction=0.02 / units.fs,
                   rng=rng)  # fmt: skip
    dyn.run(100)
    frames = []
    for i in range(n):
        dyn.run(20)
        frames.append(labeled(atoms, f"{tag}-{i}"))
    return frames


def datasets(seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    train = []
    for i in range(24):
        atoms = bulk("Cu", "fcc", a=3.61 * (1 + rng.uniform(-0.02, 0.02)), cubic=True)
        atoms = atoms.repeat((2, 2, 2))
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        train.append(labeled(atoms, f"rattled-{i}"))
    train += md_frames(600.0, 12, seed + 100, "md600")
    return train, md_frames(1000.0, 24, seed + 200, "md1000")


def committee_figures(models: list[Path], heldout: list, rng: np.random.Generator) -> dict:
    table, metrics, _ = evaluate(EnsembleCalculator([str(m) for m in models]), heldout)
    figures = {"force_rmse": metrics["force_rmse"]}
    for metric in METRICS:
        rho = statistics.spearman_interval(table[f"u_{metric}"], table["force_rmse"], rng)
        figures[metric] = (rho.rho, rho.low, rho.high)
    return figures


def run_seed(seed: int, epochs: int, work: Path) -> dict:
    train, heldout = datasets(seed)
    config = validate_config(yaml.safe_load((REPO / ".test" / "config.yaml").read_text()),
                             REPO / ".test")  # fmt: skip
    config["training"]["max_epochs"] = epochs
    rng = np.random.default_rng(seed)
    models, seconds = {}, {}
    plan = [("nequip", i) for i in range(4)] + [("allegro", i) for i in range(2)]
    for architecture, i in plan:
        name = f"{architecture}_{i}"
        subset = work / f"{name}.extxyz"
        write_frames(subset, subsample(train, 0.8, rng))
        started = time.perf_counter()
        models[name] = work / f"{name}.nequip.zip"
        trainer.train_member(Settings.from_config(config), subset, ["Cu"],
                             1000 * seed + len(models), seed, work / name, models[name],
                             architecture=architecture)  # fmt: skip
        seconds[name] = time.perf_counter() - started
    committees = {
        "nequip": [f"nequip_{i}" for i in range(4)],
        "mixed": ["nequip_0", "nequip_1", "allegro_0", "allegro_1"],
    }
    result = {}
    for label, names in committees.items():
        figures = committee_figures([models[n] for n in names], heldout,
                                    np.random.default_rng(seed))  # fmt: skip
        figures["train_s"] = sum(seconds[n] for n in names)
        result[label] = figures
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    per_seed = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            work = Path(tmp) / f"seed{seed}"
            work.mkdir()
            per_seed[seed] = result = run_seed(seed, args.epochs, work)
            for label, f in result.items():
                rhos = "  ".join(
                    f"rho({m}) {f[m][0]:.3f} [{f[m][1]:.3f}, {f[m][2]:.3f}]" for m in METRICS
                )
                print(f"seed {seed} {label:>6}: {rhos}  force RMSE {f['force_rmse']:.4f} eV/A"
                      f"  training {f['train_s']:.0f} s", flush=True)  # fmt: skip
    deltas = {m: np.array([per_seed[s]["mixed"][m][0] - per_seed[s]["nequip"][m][0]
                           for s in args.seeds]) for m in METRICS}  # fmt: skip
    rng = np.random.default_rng(0)
    for metric, delta in deltas.items():
        picks = rng.integers(0, len(delta), size=(2000, len(delta)))
        low, high = np.percentile(np.median(delta[picks], axis=1), [2.5, 97.5])
        print(f"median rho difference mixed - nequip ({metric}, {len(delta)} seeds): "
              f"{np.median(delta):.3f} [{low:.3f}, {high:.3f}]")  # fmt: skip
    ratio = np.median([per_seed[s]["mixed"]["train_s"] / per_seed[s]["nequip"]["train_s"]
                       for s in args.seeds])  # fmt: skip
    print(f"ratio_train_time_mixed_to_nequip {ratio:.3f}")
    print(f"delta_spearman_mixed_minus_nequip {np.median(deltas['force_max']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
