"""Does the uncertainty see what the potential was never taught? Bulk-only ensembles on defects.

System: the demo (CuI, 32 atoms, GFN1-xTB labels from tblite, tiny NequIP
members, the demo's exploration), run for ``--iterations`` iterations on the
pristine crystal only, through the real ``snakemake`` command (convergence off,
held-out truth: a GFN1-xTB MD of the bulk at 600 K). Every iteration's ensemble
is then judged, outside the campaign, on GFN1-xTB MD at 600 K of three cells it
never saw in training:

``bulk``
    a second, independent trajectory of the pristine cell (own seed);
``vacancy``
    the cell without one Cu atom;
``interstitial``
    the cell with one extra Cu atom on an empty octahedral site.

Per frame: the force RMSE against GFN1-xTB and every uncertainty metric of the
iteration's ensemble, the novelty ones with a reference fitted to that
iteration's training set (:mod:`almomd.ensemble.novelty`, as the workflow's
``fit_novelty`` step does), and for comparison the same novelty without
whitening (``novelty_plain``: plain Euclidean distances in the learned features,
the first version) and in a fixed geometric descriptor instead of the learned
features (``novelty_radial``: Gaussian-smeared neighbour densities per element
within the model's cutoff, whitened).
Per cell: the RMS of the frames' errors and of each
metric. Reported per seed, iteration, defect and metric: the defect/bulk
ratios of error and of uncertainty and ``overconfidence_ratio`` = (defect
error/u) / (bulk error/u) (1 when the uncertainty grows exactly as the error
does; the goal is at most 1.25), and Spearman's rank correlation of u and
error over the pooled bulk and defect frames (goal: at least 0.8).

The campaigns select with the schema's default metric; every metric is judged
on the same ensembles. A finished campaign is kept when the script runs again
(``--analyse-only`` only reads them).

Last lines: ``overconfidence_ratio_max_<metric> <x>`` for each metric (the
largest over defects, iterations and seeds; ``force_max`` is the ensemble
spread alone), then ``overconfidence_ratio_max <x>`` for the default metric.

Usage: .venv/bin/python benchmarks/defect_uncertainty.py [--seeds 1 2 3] [--iterations 6]
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
    campaign_config,
    median_interval,
    output_directory,
    schedule,
    snapshot_code,
)

TEMPERATURE = 600.0
CELLS = ("bulk", "vacancy", "interstitial")
DEFECTS = CELLS[1:]
METRICS = ("force_mean", "force_max", "energy", "novelty", "force_max_novelty")
GOAL_OVERCONFIDENCE, GOAL_SPEARMAN = 1.25, 0.8
#: For comparison: novelty in the learned features without whitening (plain Euclidean
#: distances, the first version), and in a fixed geometric descriptor instead
COMPARISON = ("novelty_plain", "force_max_novelty_plain", "novelty_radial",
              "force_max_novelty_radial")  # fmt: skip
ALL_METRICS = METRICS + COMPARISON
R_MAX = 5.0  # the demo's model.r_max


def radial_descriptor(atoms) -> np.ndarray:
    """Per atom and neighbour element: Gaussian-smeared neighbour density, ``(1, N, F)``."""
    from ase.neighborlist import neighbor_list

    centers = np.arange(1.5, R_MAX, 0.2)
    i, j, d = neighbor_list("ijd", atoms, R_MAX)
    symbols = np.array(atoms.get_chemical_symbols())
    cutoff = 0.5 * (np.cos(np.pi * d / R_MAX) + 1.0)
    smeared = np.exp(-((d[:, None] - centers) ** 2) / (2 * 0.15**2)) * cutoff[:, None]
    out = np.zeros((len(atoms), 2, len(centers)))
    for s, element in enumerate(("Cu", "I")):
        mask = symbols[j] == element
        np.add.at(out[:, s], i[mask], smeared[mask])
    return out.reshape(1, len(atoms), -1)


def cells_config(seed: int) -> dict:
    """The demo with the three cells as systems (for the reference MD only)."""
    config = yaml.safe_load((DEMO / "config.yaml").read_text())
    config.pop("system")
    config["seed"] = seed
    bulk = {"name": "bulk", "structure": "CuI.xyz", "supercell": [2, 2, 1]}
    config["systems"] = [
        bulk,
        {"name": "vacancy", "from": "bulk", "remove": [0]},  # atom 0 is Cu
        {
            "name": "interstitial",
            "from": "bulk",
            "insert": [{"symbol": "Cu", "position": [0.25, 0.25, 0.5]}],
        },  # fmt: skip
    ]
    config["exploration"]["temperatures"] = [TEMPERATURE]
    config["heldout"] = {"source": "reference_md"}
    return config


def reference_frames(cell: str, trajectory: str, n_frames: int, between: int, out: Path) -> str:
    """GFN1-xTB MD frames of one cell at 600 K (almomd's reference MD), own seed per trajectory."""
    from almomd.evaluation import reference_md as reference
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.seeds import rng_for
    from almomd.settings.campaign import conditions
    from almomd.settings.schema import validate_config
    from almomd.settings.sections import Settings

    if out.exists():
        return f"{out.name}: cached"
    config = validate_config(cells_config(0), DEMO)
    settings = Settings.from_config(config)
    spec = next(c for c in conditions(config) if c.system == cell)
    labeler = Labeler(LabelerSettings(name="tblite", parameters={"method": "GFN1-xTB"}))
    started = time.perf_counter()
    reference.reference_md(
        settings.structure(cell), labeler, reference.reference_settings(settings.exploration, spec),
        spec, n_frames, 40, between, [rng_for(0, "defect-uncertainty", cell, trajectory)], str(out),
    )  # fmt: skip
    return f"{out.name}: {n_frames} frames in {time.perf_counter() - started:.0f} s"


def judge_iteration(workdir: Path, iteration: int, frames: dict[str, list]) -> dict:
    """Per cell and frame: force RMSE and every metric of one iteration's ensemble."""
    from almomd.data.frames import read_frames
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.ensemble.novelty import NoveltyReference, combined
    from almomd.ensemble.uncertainty import force_spread

    results = workdir / "results" / f"iter_{iteration}"
    models = sorted(str(p) for p in (results / "models").glob("member_*.nequip.zip"))
    calc = EnsembleCalculator(models)
    train = read_frames(results / "train.extxyz")
    symbols = [atoms.get_chemical_symbols() for atoms in train]
    rng = np.random.default_rng(iteration)
    features = [calc.features(a) for a in train]
    calc.novelty = NoveltyReference.fit(features, symbols, rng)
    plain = NoveltyReference.fit(features, symbols, rng, whiten=False)
    radial = NoveltyReference.fit([radial_descriptor(a) for a in train], symbols, rng)
    judged = {"n_train": len(train)}
    for cell, cell_frames in frames.items():
        rows = []
        for truth in cell_frames:
            atoms = truth.copy()
            atoms.calc = calc
            atoms.get_potential_energy()
            error = calc.results["forces"] - truth.get_forces()
            spread = force_spread(calc.results["member_forces"])
            row = {"error": float(np.sqrt((error**2).mean()))}
            row |= {m: calc.results["uncertainty"][m] for m in METRICS}
            for name, nu in (
                ("plain", plain.novelty(calc.features(truth), truth.get_chemical_symbols())),
                ("radial", radial.novelty(radial_descriptor(truth), truth.get_chemical_symbols())),
            ):
                row |= {f"novelty_{name}": float(nu.max()),
                        f"force_max_novelty_{name}": combined(spread, nu)}  # fmt: skip
            rows.append(row)
        judged[cell] = rows
    return judged


def judge_campaign(workdir: Path, iterations: int, frames: dict[str, list]) -> list[dict]:
    """Every iteration of one campaign, cached in ``judged.json`` of its directory.

    A campaign that stopped early (no frame selected) has fewer iterations.
    """
    ran = [i for i in range(iterations) if (workdir / "results" / f"iter_{i}" / "models").is_dir()]
    iterations = len(ran)
    cache = workdir / "judged.json"
    if cache.exists():
        found = json.loads(cache.read_text())
        if len(found) >= iterations:
            return found[:iterations]
    found = [judge_iteration(workdir, i, frames) for i in range(iterations)]
    cache.write_text(json.dumps(found))
    return found


def rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def ratios(judged: dict, defect: str, metric: str) -> dict[str, float]:
    """Defect/bulk ratios of error, of uncertainty, and the overconfidence ratio."""
    error = rms([r["error"] for r in judged[defect]]) / rms([r["error"] for r in judged["bulk"]])
    u = rms([r[metric] for r in judged[defect]]) / rms([r[metric] for r in judged["bulk"]])
    return {"error": error, "u": u, "overconfidence": error / u if u > 0 else np.inf}


def spearman(judged: dict, metric: str) -> float:
    from scipy.stats import spearmanr

    pooled = [r for cell in CELLS for r in judged[cell]]
    u = [min(r[metric], 1e300) for r in pooled]
    return float(spearmanr(u, [r["error"] for r in pooled]).statistic)


def main() -> int:
    from almomd.settings.sections import Uncertainty

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10, help="reference MD frames per cell")
    parser.add_argument("--between", type=int, default=30, help="MD steps between frames")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "defect_uncertainty"))
    parser.add_argument("--analyse-only", action="store_true", help="read finished runs of --seeds")
    args = parser.parse_args()
    out = output_directory(args.out)
    started = time.perf_counter()
    import ase.io

    default = Uncertainty().metric
    trajectories = [("bulk", "a"), ("bulk", "b"), ("vacancy", "a"), ("interstitial", "a")]
    files = {t: out / f"reference_{t[0]}_{t[1]}.extxyz" for t in trajectories}
    if not args.analyse_only:
        snapshot = snapshot_code(out)
        print("reference MD (GFN1-xTB) at 600 K ...", flush=True)
        with ProcessPoolExecutor(args.parallel) as pool:
            jobs = [pool.submit(reference_frames, c, t, args.frames, args.between, files[(c, t)])
                    for c, t in trajectories]  # fmt: skip
            for job in jobs:
                print("  " + job.result(), flush=True)
        shared = {"CuI.xyz": DEMO / "CuI.xyz", "heldout.extxyz": files[("bulk", "a")]}
        runs = [Run(f"seed{s}", out / f"seed{s}", campaign_config(s, "active", args.iterations),
                    shared) for s in args.seeds]  # fmt: skip
        print(f"{len(runs)} bulk-only campaigns of {args.iterations} iterations, "
              f"{args.parallel} at a time ...", flush=True)  # fmt: skip
        if not schedule(runs, args.parallel, snapshot):
            return 1
    judged_at = time.perf_counter()
    frames = {
        "bulk": ase.io.read(files[("bulk", "b")], ":"),
        "vacancy": ase.io.read(files[("vacancy", "a")], ":"),
        "interstitial": ase.io.read(files[("interstitial", "a")], ":"),
    }
    judged = {s: judge_campaign(out / f"seed{s}", args.iterations, frames) for s in args.seeds}
    n_frames = sum(map(len, frames.values()))
    print(f"\njudged {args.iterations} iterations x {len(args.seeds)} seeds on {n_frames} "
          f"frames in {time.perf_counter() - judged_at:.0f} s")  # fmt: skip
    print("per seed and iteration: training frames; force RMSE (eV/A) of bulk / vacancy / "
          "interstitial")  # fmt: skip
    for seed in args.seeds:
        for i, it in enumerate(judged[seed]):
            errors = " / ".join(f"{rms([r['error'] for r in it[c]]):.4f}" for c in CELLS)
            print(f"  seed {seed} it{i} ({it['n_train']} frames): {errors}")
    worst, summary = {}, {}
    for metric in ALL_METRICS:
        print(f"\n{metric}: defect/bulk ratio of error, of u, and (error/u)/(error/u) "
              "per iteration, median over seeds; Spearman(u, error) pooled")  # fmt: skip
        overall = []
        for defect in DEFECTS:
            for i in range(args.iterations):
                per_seed = [ratios(judged[s][i], defect, metric)
                            for s in args.seeds if i < len(judged[s])]  # fmt: skip
                over = [r["overconfidence"] for r in per_seed]
                overall.extend(over)
                err = np.median([r["error"] for r in per_seed])
                u = np.median([r["u"] for r in per_seed])
                print(f"  {defect:>12} it{i}: error {err:.2f}x  u {u:.2f}x  overconfidence "
                      f"{np.median(over):.2f} (max {max(over):.2f})")  # fmt: skip
        rho = [spearman(it, metric) for s in args.seeds for it in judged[s]]
        rng = np.random.default_rng(0)
        median, low, high = median_interval(rho, rng)
        print(f"  Spearman(u, error): median {median:.2f} [{low:.2f}, {high:.2f}], "
              f"min {min(rho):.2f} over {len(rho)} ensembles")  # fmt: skip
        worst[metric] = max(overall)
        summary[metric] = {"overconfidence_max": max(overall), "spearman": rho}
    print(f"\ngoals: overconfidence <= {GOAL_OVERCONFIDENCE} at every iteration and seed, "
          f"Spearman >= {GOAL_SPEARMAN}; default metric {default}")  # fmt: skip
    print(f"seeds {args.seeds}, wall time {time.perf_counter() - started:.0f} s")
    (out / "results.json").write_text(json.dumps(
        {"seeds": args.seeds, "iterations": args.iterations, "judged": judged,
         "summary": summary, "default": default}, indent=2))  # fmt: skip
    for metric in ALL_METRICS:
        print(f"overconfidence_ratio_max_{metric} {worst[metric]:.3f}")
    print(f"overconfidence_ratio_max {worst[default]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
