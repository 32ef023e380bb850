"""Exploration throughput: walkers and members in one pass, against one after another.

Measured side by side in one run, 1 thread, atom-steps per second of Langevin MD
(Cu fcc at 300 K, members of the demo's size trained here on EMT-labeled Cu;
the cost of a step does not depend on the weights):

- ``one``: a single NequIP model, one walker;
- ``member_by_member``: one walker, one ASE calculator per member (ALmoMD's way);
- ``batched``: one walker, almomd's ensemble calculator (all members in one pass);
- ``W x batched``: W walkers one after another, each with the batched ensemble
  (a job per walker, without the start-up);
- ``W in one pass``: W walkers in one process, their structures and the members
  in one pass per MD step (``exploration.walkers_per_job``,
  :mod:`almomd.exploration.packed`), eager;
- ``compiled``: the same, the pass compiled by ``torch.compile`` (8 walkers; the
  compiling, tens of seconds once per job and shape, is not in the time).

At 32 and 108 atoms, 4 and 8 members, 1 and 8 walkers (each walker its own
random seed). Start-up (imports, loading the models: several seconds per job)
is not in these times: packing saves it on top. The last line is
``ratio_8_walkers_batched <x>``: the time of 8 walkers in one eager pass over 8
walkers one after another (eager), 32 atoms, 4 members (the goal is at most 0.35
on a CPU); the line above it, ``ratio_8_walkers_batched_compiled``, is the same
with the pack's pass compiled.

Usage: .venv/bin/python benchmarks/walker_throughput.py [--steps 20] [--models DIR]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase import units  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution  # noqa: E402
from ensemble_step import MemberByMember, cu, members  # noqa: E402

from almomd.ensemble.calculator import EnsembleCalculator, _load_member  # noqa: E402
from almomd.exploration.packed import run_together  # noqa: E402

WARM_UP = 5


def walk(atoms, calc, steps: int, seed: int) -> float:
    """Seconds of ``steps`` Langevin steps after a warm-up, walker ``seed``."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    dyn = Langevin(atoms, 2 * units.fs, temperature_K=300, friction=0.02 / units.fs, rng=rng)
    dyn.run(WARM_UP)
    start = time.perf_counter()
    dyn.run(steps)
    return time.perf_counter() - start


def together(atoms, ensemble, steps: int, walkers: int) -> float:
    """Seconds of ``walkers`` walkers in one pass, each ``steps`` steps after the warm-up
    (the slowest walker's: they step together)."""
    return max(run_together(ensemble, [lambda c, w=w: walk(atoms, c, steps, w)
                                       for w in range(walkers)]))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--models", help="folder of .nequip.zip members (trained there if it has none)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "compile_cache")
        models = members(args.models, Path(tmp))
        print("atom-steps per second (1 thread); ratio: W in one pass over W one after another")
        print(f"{'atoms':>5} {'members':>7} {'walkers':>7} {'one':>7} {'mbm':>7} "
              f"{'batched':>7} {'W x batched':>11} {'W in one pass':>13} {'ratio':>6} "
              f"{'compiled':>8} {'ratio':>6}")  # fmt: skip
        ratios = {}
        for n_repeat in (2, 3):
            atoms = cu(n_repeat)
            rate = len(atoms) * args.steps
            one = rate / walk(atoms, _load_member(models[0], "cpu"), args.steps, 0)
            for m in (4, 8):
                chosen = [models[i % len(models)] for i in range(m)]
                mbm = rate / walk(
                    atoms, MemberByMember([_load_member(p, "cpu") for p in chosen]), args.steps, 0
                )
                ensemble = EnsembleCalculator(chosen)
                batched = rate / walk(atoms, ensemble, args.steps, 0)
                for w in (1, 8):
                    alone = sum(walk(atoms, ensemble, args.steps, s) for s in range(w))
                    packed = together(atoms, ensemble, args.steps, w)
                    ratios[(len(atoms), m, w)] = packed / alone
                    text = ""
                    if w > 1:
                        compiled = EnsembleCalculator(chosen, compile=True)
                        together(atoms, compiled, 2, w)  # compiling, not timed
                        fused = together(atoms, compiled, args.steps, w)
                        ratios[(len(atoms), m, w, "compiled")] = fused / alone
                        text = f" {w * rate / fused:8.0f} {fused / alone:6.3f}"
                    print(f"{len(atoms):5d} {m:7d} {w:7d} {one:7.0f} {mbm:7.0f} {batched:7.0f} "
                          f"{w * rate / alone:11.0f} {w * rate / packed:13.0f} "
                          f"{packed / alone:6.3f}{text}", flush=True)  # fmt: skip
    print(f"wall time {time.perf_counter() - started:.0f} s")
    print(f"ratio_8_walkers_batched_compiled {ratios[(32, 4, 8, 'compiled')]:.3f}")
    print(f"ratio_8_walkers_batched {ratios[(32, 4, 8)]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
