"""Several structures and uncertainty-driven exploration: CuI with a Cu vacancy.

System: the demo's CuI supercell (32 atoms) and the same cell without one Cu
atom, GFN1-xTB labels (tblite), tiny NequIP members (the demo's settings),
walkers at 600 K. Held-out truth: GFN1-xTB MD at 600 K of each cell
(``--heldout-frames`` decorrelated frames each, tagged ``al_system``), made
once and shared by every run as ``heldout.file``. Three campaigns per seed,
through the real ``snakemake`` command, convergence switched off:

``pristine``
    the bulk alone (the campaign of today): walkers and training data of the
    pristine crystal only, judged on both cells;
``plain``
    ``systems: [bulk, vacancy]`` with plain NVT walkers;
``biased``
    the same two systems, every walker under the uncertainty-driven bias
    (``--strength``, ``--width``).

Reported per seed, arm and iteration, for each system: held-out force RMSE,
RMS of the selection metric (force_max) and their ratio, error/uncertainty.
Two questions:

1. Does an ensemble trained on the pristine crystal see that it is wrong on
   the vacancy? Measured as the vacancy's error/uncertainty over the bulk's
   (1 when the uncertainty grows exactly as the error does; the goal is at
   most 1.25), for ``pristine`` against the two-system campaigns.
2. Does biased exploration reach the vacancy's held-out target with fewer
   labels than plain NVT of the same structures? Labels (training frames,
   initial ones included) at which the vacancy's held-out force RMSE first
   reaches the target, interpolated between iterations; target: the largest
   final vacancy error of the plain and biased runs (every run reaches it).
   Medians over seeds with bootstrap intervals (see active_vs_random.py).

Also the vacancy's error at the last iteration (about the same labels in both
arms), which does not degenerate when the error curve is not monotonic.

Last lines: ``overconfidence_ratio_<arm> <x>`` (median over seeds, final
iteration), ``ratio_final_vacancy_rmse_biased_to_plain <x>`` and
``ratio_labels_biased_to_plain <x>``.

Usage: .venv/bin/python benchmarks/defect_exploration.py [--seeds 1 2 3] [--parallel 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_vs_random import (  # noqa: E402
    DEMO,
    REPO,
    Run,
    labels_to_reach,
    median_interval,
    output_directory,
    ratio_interval,
    schedule,
    snapshot_code,
)

ARMS = ("pristine", "plain", "biased")
SYSTEMS = ("bulk", "vacancy")
TEMPERATURE = 600.0


def systems_of(arm: str, vacancy: int, bias: dict) -> list[dict]:
    bulk = {"name": "bulk", "structure": "CuI.xyz", "supercell": [2, 2, 1]}
    if arm == "pristine":
        return [bulk]
    defect = {"name": "vacancy", "from": "bulk", "remove": [vacancy]}
    if arm == "biased":
        bulk["exploration"] = {"bias": bias}
        defect["exploration"] = {"bias": bias}
    return [bulk, defect]


def campaign_config(seed: int, arm: str, iterations: int, vacancy: int, bias: dict) -> dict:
    config = yaml.safe_load((DEMO / "config.yaml").read_text())
    config.pop("system")
    config["systems"] = systems_of(arm, vacancy, bias)
    config["seed"] = seed
    config["max_iterations"] = iterations
    config["heldout"] = {"source": "file", "file": "heldout.extxyz"}
    config["convergence"] = {"force_rmse": None, "uncertain_fraction": None}
    config["exploration"]["temperatures"] = [TEMPERATURE]
    return config


def reference_frames(config: dict, system: str, n_frames: int, out: Path) -> str:
    """GFN1-xTB MD frames of one system at 600 K (almomd's reference MD), tagged al_system."""
    from almomd.evaluation import reference_md as reference
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.seeds import rng_for
    from almomd.settings import systems
    from almomd.settings.campaign import conditions
    from almomd.settings.sections import Settings

    if out.exists():
        return f"{out.name}: cached"
    spec = next(c for c in conditions(config) if c.system == system)
    labeler = Labeler(LabelerSettings(name="tblite", parameters={"method": "GFN1-xTB"}))
    started = time.perf_counter()
    held = config["heldout"]
    reference.reference_md(
        systems.structure(config, system), labeler,
        reference.reference_settings(Settings.from_config(config).exploration, spec), spec,
        n_frames, held["equilibration_steps"], held["steps_between"],
        [rng_for(config["seed"], "defect-heldout", system)], str(out),
    )  # fmt: skip
    return f"{out.name}: {n_frames} frames in {time.perf_counter() - started:.0f} s"


def system_curve(workdir: Path, system: str) -> list[dict]:
    """Per iteration: training frames and the system's held-out figures.

    Computed from each iteration's held-out table, whose frames are told apart by
    their condition label (``bulk 600 K``, ``vacancy 600 K``): that works for
    the pristine campaign too, whose one system would claim every frame.
    """
    import pandas as pd

    from almomd.evaluation.heldout import system_summary

    status = json.loads((workdir / "results" / "status.json").read_text())
    points = []
    for row in status:
        path = workdir / "results" / f"iter_{row['iteration']}" / "eval/heldout_predictions.csv"
        table = pd.read_csv(path)
        own = table[table["condition"].str.startswith(f"{system} ")]
        figures = system_summary(own, np.random.default_rng(0), "u_force_max", None, 0.5)
        points.append({"n_train": row["n_train"]} | figures)
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--heldout-frames", type=int, default=10, help="per system")
    parser.add_argument("--strength", type=float, default=2.0, help="bias A (eV)")
    parser.add_argument("--width", type=float, default=0.08, help="bias B (eV per sqrt(atom))")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS,
                        help="campaigns to run (the others must be finished in --out)")  # fmt: skip
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "defect_exploration"))
    parser.add_argument("--analyse-only", action="store_true", help="read finished runs of --seeds")
    args = parser.parse_args()
    out = output_directory(args.out)
    started = time.perf_counter()
    import ase.io

    from almomd.settings.schema import validate_config

    bulk = ase.io.read(DEMO / "CuI.xyz").repeat((2, 2, 1))
    vacancy = bulk.get_chemical_symbols().index("Cu")
    bias = {"strength": args.strength, "width": args.width}
    reference = campaign_config(0, "plain", 1, vacancy, bias)
    reference = validate_config(reference | {"heldout": {"source": "reference_md"}}, DEMO)
    reference["heldout"] |= {"equilibration_steps": 40, "steps_between": 40}
    if not args.analyse_only:
        snapshot = snapshot_code(out)
        print("reference MD (GFN1-xTB) of each system at 600 K ...", flush=True)
        with ProcessPoolExecutor(args.parallel) as pool:
            jobs = [pool.submit(reference_frames, reference, s, args.heldout_frames,
                                out / f"heldout_{s}.extxyz") for s in SYSTEMS]  # fmt: skip
            for job in jobs:
                print("  " + job.result(), flush=True)
        frames = [a for s in SYSTEMS for a in ase.io.read(out / f"heldout_{s}.extxyz", ":")]
        ase.io.write(out / "heldout.extxyz", frames, format="extxyz")
        files = {"CuI.xyz": DEMO / "CuI.xyz", "heldout.extxyz": out / "heldout.extxyz"}
        runs = [
            Run(f"seed{seed}_{arm}", out / f"seed{seed}_{arm}",
                campaign_config(seed, arm, args.iterations, vacancy, bias), files)
            for seed in args.seeds for arm in args.arms
        ]  # fmt: skip
        print(f"{len(runs)} campaigns, {args.parallel} at a time ...", flush=True)
        if not schedule(runs, args.parallel, snapshot):
            return 1
    curves = {
        seed: {
            arm: {s: system_curve(out / f"seed{seed}_{arm}", s) for s in SYSTEMS} for arm in ARMS
        }
        for seed in args.seeds
    }
    print(f"\nheld-out: {args.heldout_frames} GFN1-xTB MD frames at 600 K of each system; "
          f"bias A = {args.strength} eV, B = {args.width} eV/sqrt(atom)")  # fmt: skip
    for seed in args.seeds:
        print(f"seed {seed}: training frames -> held-out force RMSE (eV/A) [error/uncertainty]")
        for arm in ARMS:
            for system in SYSTEMS:
                points = curves[seed][arm][system]
                text = "  ".join(
                    f"{p['n_train']}: {p['force_rmse']:.4f} [{p['error_to_uncertainty']:.2f}]"
                    for p in points
                )
                print(f"  {arm:>8} {system:>7}  {text}")
    rng = np.random.default_rng(0)
    overconfidence = {}
    print("overconfidence: vacancy error/uncertainty over the bulk's, per iteration (median [95%])")
    for arm in ARMS:
        per_iteration = []
        for i in range(args.iterations):
            ratios = [
                curves[s][arm]["vacancy"][i]["error_to_uncertainty"]
                / curves[s][arm]["bulk"][i]["error_to_uncertainty"]
                for s in args.seeds
            ]
            per_iteration.append(median_interval(ratios, rng))
        overconfidence[arm] = per_iteration
        text = "  ".join(
            f"it{i} {m:.2f} [{lo:.2f}, {hi:.2f}]" for i, (m, lo, hi) in enumerate(per_iteration)
        )
        print(f"  {arm:>8}  {text}")
    finals = [curves[s][a]["vacancy"][-1]["force_rmse"] for s in args.seeds for a in ARMS[1:]]
    target = max(finals)
    needed = {
        arm: [
            labels_to_reach(
                [(p["n_train"], p["force_rmse"]) for p in curves[s][arm]["vacancy"]], target
            )
            for s in args.seeds
        ]
        for arm in ARMS[1:]
    }
    print(f"labels to reach the vacancy's held-out force RMSE {target:.4f} eV/A "
          "(largest final vacancy error of plain and biased):")  # fmt: skip
    for arm, values in needed.items():
        median, low, high = median_interval(values, rng)
        per_seed = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {arm:>8}  {median:.1f} [{low:.1f}, {high:.1f}]  per seed {per_seed}")
    ratio = ratio_interval(needed["biased"], needed["plain"], rng)
    print(f"  ratio of medians biased / plain: {ratio[0]:.3f} [{ratio[1]:.3f}, {ratio[2]:.3f}]")
    final = {arm: [curves[s][arm]["vacancy"][-1]["force_rmse"] for s in args.seeds]
             for arm in ARMS}  # fmt: skip
    print("vacancy's held-out force RMSE at the last iteration (eV/A), median [95%]:")
    for arm, values in final.items():
        median, low, high = median_interval(values, rng)
        per_seed = ", ".join(f"{v:.4f}" for v in values)
        print(f"  {arm:>8}  {median:.4f} [{low:.4f}, {high:.4f}]  per seed {per_seed}")
    final_ratio = ratio_interval(final["biased"], final["plain"], rng)
    print(f"  ratio of medians biased / plain: {final_ratio[0]:.3f} "
          f"[{final_ratio[1]:.3f}, {final_ratio[2]:.3f}]")  # fmt: skip
    print(f"seeds {args.seeds}, wall time {time.perf_counter() - started:.0f} s")
    (out / "results.json").write_text(json.dumps(
        {"seeds": args.seeds, "bias": bias, "curves": {str(s): c for s, c in curves.items()},
         "overconfidence": overconfidence, "target": target, "labels_needed": needed,
         "ratio_labels_biased_to_plain": ratio, "final_vacancy_rmse": final,
         "ratio_final_vacancy_rmse_biased_to_plain": final_ratio}, indent=2))  # fmt: skip
    for arm in ARMS:
        print(f"overconfidence_ratio_{arm} {overconfidence[arm][-1][0]:.3f}")
    print(f"ratio_final_vacancy_rmse_biased_to_plain {final_ratio[0]:.3f}")
    print(f"ratio_labels_biased_to_plain {ratio[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
