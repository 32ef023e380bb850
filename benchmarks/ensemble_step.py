"""Cost of one MD step with an ensemble: one model, member by member, and batched.

Measured side by side in one run, 1 thread, ms per Langevin step (Cu fcc):

- ``one``: a single NequIP model (NequIPCalculator);
- ``member_by_member``: ALmoMD's way, one ASE calculator per member, each
  building its own neighbour list and running its own forward and backward;
- ``shared_graph``: almomd's ensemble calculator with batching off (one
  neighbour list, then the members one after another);
- ``ours``: almomd's ensemble calculator, all members in one mapped pass on a
  shared edge geometry (the default, eager PyTorch), the layers' tensor
  products fused (:mod:`almomd.ensemble.fused`);
- ``e3nn_tp``: the same pass with e3nn's tensor products (``fuse=False``);
- ``compiled``: the same pass compiled by ``torch.compile``
  (``exploration.torch_compile``); the seconds spent compiling before the
  first step (a fresh cache, so the first case compiles cold) are printed
  as ``compile_s`` and are not in the step times.

Members are trained once here with the demo's model size (config/config.yaml)
on EMT-labeled Cu frames (the cost of a step does not depend on the weights).
The last lines are ``ratio_4_members_eager <ours / member_by_member>`` and
``ratio_4_members <compiled / member_by_member>``, at 32 atoms.
Usage: .venv/bin/python benchmarks/ensemble_step.py [--steps 30]
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
import torch  # noqa: E402
import yaml  # noqa: E402
from ase import units  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.calculator import Calculator, all_changes  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution  # noqa: E402

from almomd.data.frames import labeled_copy, write_frames  # noqa: E402
from almomd.ensemble.batched import BatchedMembers  # noqa: E402
from almomd.ensemble.calculator import EnsembleCalculator, _load_member  # noqa: E402
from almomd.settings.schema import validate_config  # noqa: E402
from almomd.settings.sections import Settings  # noqa: E402
from almomd.training.trainer import train_member  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class MemberByMember(Calculator):
    """ALmoMD's ensemble: every member is a calculator of its own."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, members):
        super().__init__()
        self.members = members

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        energies, forces = [], []
        for member in self.members:
            member.reset()
            work = self.atoms.copy()
            work.calc = member
            energies.append(work.get_potential_energy())
            forces.append(work.get_forces())
        self.results = {"energy": float(np.mean(energies)), "forces": np.mean(forces, axis=0)}


def cu(n_repeat: int):
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(n_repeat)


def train_models(workdir: Path, n: int) -> list[Path]:
    """Train ``n`` members of the demo's size on EMT-labeled rattled Cu."""
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["model"] = demo["model"]
    config["training"]["max_epochs"] = 2
    config = validate_config(config, REPO / ".test")
    rng = np.random.default_rng(0)
    frames = []
    for i in range(24):
        atoms = cu(2)
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        frames.append(labeled_copy(atoms, atoms.get_potential_energy(), atoms.get_forces(),
                                   al_id=f"b-{i}"))  # fmt: skip
    train_file = workdir / "train.extxyz"
    write_frames(train_file, frames)
    models = []
    for k in range(n):
        out = workdir / f"member_{k}.nequip.zip"
        train_member(
            Settings.from_config(config),
            train_file,
            ["Cu"],
            100 + k,
            200 + k,
            workdir / f"run_{k}",
            out,
        )
        models.append(out)
    return models


def members(models: str | None, workdir: Path) -> list[Path]:
    """The ``.nequip.zip`` members in folder ``models``; where it has none, 8 trained
    there (kept for the next run), or in ``workdir`` without ``models``."""
    if models and sorted(Path(models).glob("*.nequip.zip")):
        return sorted(Path(models).glob("*.nequip.zip"))
    where = Path(models) if models else workdir
    where.mkdir(parents=True, exist_ok=True)
    print(f"training 8 members of the demo's size in {where} (about 4 minutes) ...", flush=True)
    return train_models(where, 8)


def ms_per_step(atoms, calc, steps: int) -> tuple[float, float]:
    """Milliseconds per Langevin step, and seconds of the warm-up (compiling, if any)."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=300, friction=0.02 / units.fs, rng=rng)
    start = time.perf_counter()
    dyn.run(10)  # warm up: the same trajectory for every calculator
    warm_up = time.perf_counter() - start
    start = time.perf_counter()
    dyn.run(steps)
    return (time.perf_counter() - start) / steps * 1000, warm_up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--models", help="folder of .nequip.zip members (trained there if it has none)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "compile_cache")
        models = members(args.models, Path(tmp))
        print(f"{'atoms':>5} {'members':>7} {'one':>6} {'member_by_member':>16} "
              f"{'shared_graph':>12} {'e3nn_tp':>7} {'ours':>6} {'compiled':>8} {'compile_s':>9} "
              f"{'e3nn/mbm':>8} {'ours/mbm':>8} {'comp/mbm':>8} {'comp/one':>8}")  # fmt: skip
        ratios = {}
        for n_repeat in (2, 3):
            atoms = cu(n_repeat)
            one, _ = ms_per_step(atoms, _load_member(models[0], "cpu"), args.steps)
            for m in (4, 8):
                chosen = (
                    models[:m] if len(models) >= m else [models[i % len(models)] for i in range(m)]
                )
                mbm, _ = ms_per_step(
                    atoms, MemberByMember([_load_member(p, "cpu") for p in chosen]), args.steps
                )
                shared, _ = ms_per_step(
                    atoms, EnsembleCalculator(chosen, batched=False), args.steps
                )
                unfused = EnsembleCalculator(chosen)
                unfused._batched = BatchedMembers([m.model for m in unfused.members], fuse=False)
                e3nn_tp, _ = ms_per_step(atoms, unfused, args.steps)
                ours, _ = ms_per_step(atoms, EnsembleCalculator(chosen), args.steps)
                compiled, compile_s = ms_per_step(
                    atoms, EnsembleCalculator(chosen, compile=True), args.steps
                )
                ratios[(len(atoms), m)] = (ours / mbm, compiled / mbm)
                print(f"{len(atoms):5d} {m:7d} {one:6.1f} {mbm:16.1f} {shared:12.1f} "
                      f"{e3nn_tp:7.1f} {ours:6.1f} {compiled:8.1f} {compile_s:9.1f} "
                      f"{e3nn_tp / mbm:8.2f} "
                      f"{ours / mbm:8.2f} {compiled / mbm:8.2f} "
                      f"{compiled / one:8.2f}", flush=True)  # fmt: skip
    eager, compiled = ratios[(32, 4)]
    print(f"ratio_4_members_eager {eager:.3f}")
    print(f"ratio_4_members {compiled:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
