"""Does the uncertainty see what the potential was never taught? Bulk-only ensembles on defects.

Two systems of different kinds, each run bulk-only through the real ``snakemake``
command for ``--iterations`` iterations and ``--seeds`` seeds (the demo's tiny
NequIP members and exploration, convergence off, held-out truth: the labeler's
MD of the bulk at 600 K, selection by the metric under test, the schema's
default unless ``--metric``):

``CuI``
    ionic, the demo: zincblende CuI (32 atoms), GFN1-xTB labels (tblite);
    defects: a Cu vacancy and a Cu interstitial on an empty octahedral site;
``Cu``
    a metal: fcc Cu (32 atoms), EMT labels; defects: a vacancy and a (001)
    surface (a slab of the same 32 atoms with 8 A of vacuum).

Every iteration's ensemble is judged, outside the campaign, on the labeler's MD
at 600 K of cells it never saw in training: a second, independent trajectory of
the bulk and one of each defect. Per frame: the force RMSE against the labeler
and every metric (below), computed from the per-atom force spread ``sigma_i``,
novelty ``nu_i`` (the iteration's novelty reference, as the workflow's
``fit_novelty`` makes it) and, for the error models, the per-atom model fitted
on the campaign's held-out frames (:mod:`almomd.ensemble.error_model`, as the
workflow fits it). Per cell: the RMS over frames of the errors and of each
metric. Reported per system, seed, iteration, defect and metric: the
defect/bulk ratios of error and of uncertainty and ``overconfidence`` = (defect
error / bulk error) / (defect u / bulk u) (1 when the uncertainty grows as the
error does; the goal is at most 1.25), and Spearman's rank correlation of u and
error over the pooled bulk and defect frames (goal: at least 0.8).

Metrics: the spread (``force_max``, ``force_mean``, ``energy``), ``novelty``,
the product ``force_max_novelty``, the error models ``force_error`` (the
predicted force RMSE, quadrature form) and ``force_error_max`` (its largest
atom), and for comparison the additive form (``force_error_additive``).

Exploration (``--arms``): ``continue`` (walkers go on across iterations, the
default) and ``restart`` (every iteration from the ideal structure). Per arm:
labeled frames that are defect-like (an atom farther than the system's
``displaced`` distance from its site in the ideal structure), and the MD time of
the first defect-like walker frame and whether its uncertainty was above the
iteration's calibrated threshold.

Last lines: ``overconfidence_ratio_max_<metric> <x>`` for each metric (the
largest over systems, defects, iterations, seeds and arms), then
``overconfidence_ratio_max <x>`` for the default metric.

Usage: .venv/bin/python benchmarks/defect_uncertainty.py [--systems CuI Cu] [--seeds 1 2 3]
       [--iterations 6] [--arms continue restart] [--analyse-only]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
GOAL_OVERCONFIDENCE, GOAL_SPEARMAN = 1.25, 0.8
METRICS = ("force_mean", "force_max", "energy", "novelty", "force_max_novelty",
           "force_error", "force_error_max", "force_error_additive")  # fmt: skip
ARMS = {"continue": True, "restart": False}


@dataclass(frozen=True)
class System:
    """A benchmark system: its cells, labeler and what counts as an atom off its site."""

    name: str
    labeler: dict
    cells: Callable[[], dict]  # bulk and two defects, as ase.Atoms
    displaced: float  # Angstrom from the ideal site: the atom has left it

    @property
    def defects(self) -> list[str]:
        return [c for c in self.cells() if c != "bulk"]


def cui_cells() -> dict:
    import ase.io

    bulk = ase.io.read(DEMO / "CuI.xyz").repeat((2, 2, 1))
    vacancy = bulk.copy()
    del vacancy[0]  # atom 0 is Cu
    interstitial = bulk.copy()
    interstitial.append("Cu")
    interstitial.positions[-1] = bulk.cell.cartesian_positions([0.25, 0.25, 0.5])
    return {"bulk": bulk, "vacancy": vacancy, "interstitial": interstitial}


def cu_cells() -> dict:
    from ase.build import bulk as crystal
    from ase.build import fcc100

    bulk = crystal("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    vacancy = bulk.copy()
    del vacancy[0]
    surface = fcc100("Cu", (2, 2, 8), a=3.61, vacuum=4.0, periodic=True)  # 8 A between slabs
    return {"bulk": bulk, "vacancy": vacancy, "surface": surface}


SYSTEMS = {
    "CuI": System("CuI", {"name": "tblite", "parameters": {"method": "GFN1-xTB"}}, cui_cells, 1.5),
    "Cu": System("Cu", {"name": "emt"}, cu_cells, 1.2),
}


def reference_frames(
    system: str, cell: str, trajectory: str, n_frames: int, between: int, out: Path
) -> str:
    """The labeler's MD frames of one cell at 600 K (almomd's reference MD), own seed."""
    from almomd.evaluation import reference_md as reference
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.seeds import rng_for
    from almomd.settings.campaign import Condition
    from almomd.settings.sections import Exploration

    if out.exists():
        return f"{system} {out.name}: cached"
    spec = SYSTEMS[system]
    atoms = spec.cells()[cell]
    condition = Condition(0, TEMPERATURE, None, cell)
    exploration = Exploration(timestep=2.0, friction=0.02, temperatures=(TEMPERATURE,))
    started = time.perf_counter()
    reference.reference_md(
        atoms, Labeler(LabelerSettings(**spec.labeler)),
        reference.reference_settings(exploration, condition), condition, n_frames, 40, between,
        [rng_for(0, "defect-uncertainty", system, cell, trajectory)], str(out),
    )  # fmt: skip
    return f"{system} {out.name}: {n_frames} frames in {time.perf_counter() - started:.0f} s"


def system_campaign(system: System, seed: int, iterations: int, arm: str, metric: str) -> dict:
    """The demo's campaign on ``system``'s bulk (``bulk.xyz``), selecting by ``metric``."""
    config = campaign_config(seed, "active", iterations)
    config["system"] = {"structure": "bulk.xyz", "supercell": [1, 1, 1]}
    config["labeler"] = dict(system.labeler, n_batches=config["labeler"].get("n_batches", 1))
    config["uncertainty"]["metric"] = metric
    config["exploration"]["continue_walkers"] = ARMS[arm]
    return config


# --- judging ---------------------------------------------------------------------------------


def per_atom(calc, frames) -> dict[str, np.ndarray]:
    """Per atom of ``frames``: force spread, novelty and error magnitude (as the workflow's
    error model is fitted on them), each atom's frame; per frame: the energy spread."""
    from almomd.ensemble.uncertainty import atom_errors

    table = atom_errors(calc, frames)
    found = {
        key: table[column].to_numpy()
        for key, column in (
            ("sigma", "sigma"),
            ("nu", "novelty"),
            ("error", "error"),
            ("frame", "frame"),
        )
    }
    return found | {"energy": table.groupby("frame")["energy"].first().to_numpy()}  # fmt: skip


def judge_iteration(workdir: Path, iteration: int, frames: dict[str, list]) -> Path:
    """Per-atom spread, novelty and error of one iteration's ensemble on the campaign's
    held-out frames (``fit``) and the judged cells, cached as ``judged_<i>.npz``."""
    from almomd.data.frames import read_frames
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.ensemble.novelty import NoveltyReference

    cache = workdir / f"judged_{iteration}.npz"
    if cache.exists():
        return cache
    results = workdir / "results" / f"iter_{iteration}"
    models = sorted(str(p) for p in (results / "models").glob("member_*.nequip.zip"))
    calc = EnsembleCalculator(models)
    train = read_frames(results / "train.extxyz")
    calc.novelty = NoveltyReference.fit(
        [calc.features(a) for a in train], [a.get_chemical_symbols() for a in train],
        np.random.default_rng(iteration),
    )  # fmt: skip
    arrays = {"n_train": np.array(len(train))}
    for cell, cell_frames in frames.items():
        arrays |= {f"{cell}/{k}": v for k, v in per_atom(calc, cell_frames).items()}
    np.savez(cache, **arrays)
    return cache


def load_judged(path: Path) -> dict:
    with np.load(path) as stored:
        found: dict = {"n_train": int(stored["n_train"])}
        for name in stored.files:
            if "/" in name:
                cell, key = name.split("/")
                found.setdefault(cell, {})[key] = stored[name]
    return found


def frame_metrics(judged: dict) -> dict[str, dict[str, np.ndarray]]:
    """Per judged cell: each frame's force RMSE and every metric."""
    from almomd.ensemble.error_model import ErrorModel

    fit = judged["fit"]
    models = {
        "force_error": ErrorModel.fit(fit["sigma"], fit["nu"], fit["error"]),
        "force_error_additive": ErrorModel.fit(fit["sigma"], fit["nu"], fit["error"], "additive"),
    }
    found = {}
    for cell, atoms in judged.items():
        if cell in ("n_train", "fit"):
            continue
        rows = {m: [] for m in ("error", *METRICS)}
        for k in np.unique(atoms["frame"]):
            inside = atoms["frame"] == k
            sigma, nu, error = atoms["sigma"][inside], atoms["nu"][inside], atoms["error"][inside]
            rows["error"].append(np.sqrt(np.mean(error**2) / 3.0))
            rows["force_mean"].append(sigma.mean())
            rows["force_max"].append(sigma.max())
            rows["energy"].append(atoms["energy"][k])
            rows["novelty"].append(nu.max())
            rows["force_max_novelty"].append((sigma * np.maximum(1.0, nu)).max())
            quadrature = models["force_error"].frame(sigma, nu)
            rows["force_error"].append(quadrature["force_error"])
            rows["force_error_max"].append(quadrature["force_error_max"])
            rows["force_error_additive"].append(
                models["force_error_additive"].frame(sigma, nu)["force_error"]
            )
        found[cell] = {m: np.asarray(v, dtype=float) for m, v in rows.items()}
    return found


def rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def ratios(cells: dict, defect: str, metric: str) -> dict[str, float]:
    """Defect/bulk ratios of error, of uncertainty, and the overconfidence ratio."""
    error = rms(cells[defect]["error"]) / rms(cells["bulk"]["error"])
    u = rms(cells[defect][metric]) / rms(cells["bulk"][metric])
    return {"error": error, "u": u, "overconfidence": error / u if u > 0 else np.inf}


def spearman(cells: dict, metric: str) -> float:
    from scipy.stats import spearmanr

    u = np.concatenate([np.minimum(c[metric], 1e300) for c in cells.values()])
    error = np.concatenate([c["error"] for c in cells.values()])
    return float(spearmanr(u, error).statistic)


# --- exploration ------------------------------------------------------------------------------


def displacement(frame, ideal) -> float:
    """The largest distance of an atom from its site in ``ideal`` (minimum image)."""
    from ase.geometry import find_mic

    vectors, _ = find_mic(frame.positions - ideal.positions, ideal.cell, ideal.pbc)
    return float(np.linalg.norm(vectors, axis=1).max())


def exploration_figures(workdir: Path, system: System, iterations: int, key: str) -> dict:
    """Defect-like labeled frames, the first defect-like walker frame (its MD time and
    whether its uncertainty was above the threshold the held-out frames set, production
    MD's mean + 3 std), the largest displacement of an atom
    from its site in any walker frame and the longest MD a walker ran (over iterations)."""
    from almomd.data.frames import read_frames
    from almomd.exploration.production import uncertainty_threshold
    from almomd.settings.sections import Production

    ideal = system.cells()["bulk"]
    labeled, defect_like, first, farthest, explored = 0, 0, None, 0.0, 0.0
    for i in range(iterations):
        results = workdir / "results" / f"iter_{i}"
        for path in sorted((results / "labels").glob("labeled_*.extxyz")):
            for frame in read_frames(path):
                labeled += 1
                defect_like += displacement(frame, ideal) > system.displaced
        threshold = uncertainty_threshold(workdir, i, key, Production().threshold_sigmas)
        for path in sorted((results / "explore").glob("walker_*.extxyz")):
            frames = read_frames(path)
            explored = max(explored, float(frames[-1].info.get("md_elapsed_fs", 0.0)))
            for frame in frames:
                moved = displacement(frame, ideal)
                farthest = max(farthest, moved)
                if first is None and moved > system.displaced:
                    first = {"iteration": i,
                             "elapsed_fs": float(frame.info.get("md_elapsed_fs", math.nan)),
                             "flagged": bool(frame.info[key] > threshold)}  # fmt: skip
    return {"labeled": labeled, "defect_like": defect_like, "first_event": first,
            "largest_displacement": round(farthest, 3), "longest_walker_fs": explored}  # fmt: skip


# --- the run ----------------------------------------------------------------------------------


def prepare(out: Path, systems: list[str], seeds: list[int], iterations: int, arms: list[str],
            metric: str, n_frames: int, between: int, parallel: int) -> bool:  # fmt: skip
    """Reference MD of every cell, then every campaign (finished ones are kept)."""
    import ase.io

    snapshot = snapshot_code(out)
    jobs, runs = [], []
    for name in systems:
        where = out / name
        where.mkdir(parents=True, exist_ok=True)
        ase.io.write(where / "bulk.xyz", SYSTEMS[name].cells()["bulk"])
        for cell in SYSTEMS[name].cells():
            for trajectory in ("a", "b") if cell == "bulk" else ("a",):
                jobs.append((name, cell, trajectory, n_frames, between,
                             where / f"reference_{cell}_{trajectory}.extxyz"))  # fmt: skip
        shared = {"bulk.xyz": where / "bulk.xyz",
                  "heldout.extxyz": where / "reference_bulk_a.extxyz"}  # fmt: skip
        runs += [Run(f"{name}-{arm}-seed{s}", where / f"{arm}_seed{s}",
                     system_campaign(SYSTEMS[name], s, iterations, arm, metric), shared)
                 for arm in arms for s in seeds]  # fmt: skip
    print(f"reference MD at {TEMPERATURE:g} K ...", flush=True)
    with ProcessPoolExecutor(parallel) as pool:
        for job in [pool.submit(reference_frames, *job) for job in jobs]:
            print("  " + job.result(), flush=True)
    print(f"{len(runs)} bulk-only campaigns of {iterations} iterations, {parallel} at a time ...",
          flush=True)  # fmt: skip
    return schedule(runs, parallel, snapshot)


def main() -> int:
    import ase.io

    from almomd.settings.sections import Uncertainty

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--arms", nargs="+", default=["continue"], choices=list(ARMS))
    parser.add_argument("--metric", default=Uncertainty().metric, help="the campaigns select by")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10, help="reference MD frames per cell")
    parser.add_argument("--between", type=int, default=30, help="MD steps between frames")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "defect_uncertainty"))
    parser.add_argument("--analyse-only", action="store_true", help="read finished runs")
    args = parser.parse_args()
    out = output_directory(args.out)
    started = time.perf_counter()
    default = Uncertainty().metric
    if not args.analyse_only and not prepare(
        out, args.systems, args.seeds, args.iterations, args.arms, args.metric, args.frames,
        args.between, args.parallel,
    ):  # fmt: skip
        return 1
    judged_at = time.perf_counter()
    table: dict = {}  # (system, arm, seed) -> per iteration: cells' frame metrics
    explored: dict = {}
    for name in args.systems:
        where, system = out / name, SYSTEMS[name]
        frames = {"fit": ase.io.read(where / "reference_bulk_a.extxyz", ":"),
                  "bulk": ase.io.read(where / "reference_bulk_b.extxyz", ":")}  # fmt: skip
        frames |= {d: ase.io.read(where / f"reference_{d}_a.extxyz", ":") for d in system.defects}
        for arm in args.arms:
            for seed in args.seeds:
                workdir = where / f"{arm}_seed{seed}"
                ran = [i for i in range(args.iterations)
                       if (workdir / "results" / f"iter_{i}" / "models").is_dir()]  # fmt: skip
                judged = [load_judged(judge_iteration(workdir, i, frames)) for i in ran]
                table[(name, arm, seed)] = [frame_metrics(j) for j in judged]
                key = "u_" + args.metric
                explored[(name, arm, seed)] = exploration_figures(workdir, system, len(ran), key)
                errors = " ".join(
                    "/".join(f"{rms(c['error']):.3f}" for c in it.values())
                    for it in table[(name, arm, seed)]
                )  # fmt: skip
                print(f"{name} {arm} seed {seed}: force RMSE per iteration "
                      f"({'/'.join(frames)[4:]}): {errors}", flush=True)  # fmt: skip
    print(f"judged in {time.perf_counter() - judged_at:.0f} s")
    worst, summary = {}, {}
    for metric in METRICS:
        print(f"\n{metric}: defect/bulk ratio of error, of u, and overconfidence per iteration "
              "(median over seeds, max); Spearman(u, error) pooled")  # fmt: skip
        overall, rho = [], []
        for name in args.systems:
            for arm in args.arms:
                runs = [table[(name, arm, s)] for s in args.seeds]
                for defect in SYSTEMS[name].defects:
                    for i in range(max(map(len, runs))):
                        found = [ratios(r[i], defect, metric) for r in runs if i < len(r)]
                        over = [f["overconfidence"] for f in found]
                        overall += over
                        print(f"  {name} {arm} {defect:>12} it{i}: error "
                              f"{np.median([f['error'] for f in found]):.2f}x  u "
                              f"{np.median([f['u'] for f in found]):.2f}x  overconfidence "
                              f"{np.median(over):.2f} (max {max(over):.2f})")  # fmt: skip
                rho += [spearman(it, metric) for r in runs for it in r]
        median, low, high = median_interval(rho, np.random.default_rng(0))
        print(f"  Spearman(u, error): median {median:.2f} [{low:.2f}, {high:.2f}], "
              f"min {min(rho):.2f} over {len(rho)} ensembles")  # fmt: skip
        worst[metric] = max(overall)
        summary[metric] = {"overconfidence_max": max(overall), "spearman": rho}
    print("\nexploration: labeled frames (defect-like), first defect-like walker frame")
    for (name, arm, seed), figures in explored.items():
        print(f"  {name} {arm} seed {seed}: {figures}")
    print(f"\ngoals: overconfidence <= {GOAL_OVERCONFIDENCE} at every iteration and seed, "
          f"Spearman >= {GOAL_SPEARMAN}; default metric {default}, campaigns selected by "
          f"{args.metric}")  # fmt: skip
    print(f"systems {args.systems}, seeds {args.seeds}, arms {args.arms}, "
          f"wall time {time.perf_counter() - started:.0f} s")  # fmt: skip
    (out / "results.json").write_text(json.dumps(
        {"systems": args.systems, "seeds": args.seeds, "arms": args.arms, "summary": summary,
         "exploration": {" ".join(map(str, k)): v for k, v in explored.items()},
         "default": default, "metric": args.metric}, indent=2))  # fmt: skip
    for metric in METRICS:
        print(f"overconfidence_ratio_max_{metric} {worst[metric]:.3f}")
    print(f"overconfidence_ratio_max {worst[default]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
