"""Does active learning save labels? The demo system, judged on reference MD.

System: the demo (CuI, 32 atoms, GFN1-xTB labels from tblite, tiny NequIP
members, exploration at 300 K and 600 K). Held-out truth: GFN1-xTB MD at both
exploration temperatures (``--heldout-frames`` decorrelated frames each, made
once and shared by every run). Three ways to spend the same labels, per seed:

``active``
    the campaign as configured (``selection.method: active``);
``random``
    the same campaign with ``selection.method: random``: the same number of
    frames per iteration drawn uniformly from the same kind of exploration;
``reference_md``
    what a user without active learning would do: the seed's initial training
    set plus frames drawn uniformly from a second, independent GFN1-xTB MD at the
    same temperatures (as many frames as the random baseline acquires, half per
    temperature), one ensemble per training-set size.

The active campaigns run two more iterations than the others (they may select
fewer than ``max_frames`` frames per iteration, so their labels would otherwise
end below the others'). A finished campaign is continued, not redone, when the
script runs again. Every campaign runs through the real ``snakemake`` command with the held-out
set as ``heldout.file``; convergence is switched off so that every campaign
runs all its iterations (active selection may take fewer than ``max_frames``
frames per iteration; random always takes ``max_frames``). The metric is the
number of labeled training frames needed to reach a target held-out force RMSE,
interpolated linearly between the points of each learning curve (a curve that
never reaches the target counts as not reached: infinitely many). Two targets,
unless ``--target`` is given: the largest final error of all runs (every run
reaches it; the last lines use it), and a stricter one, the median final error
of all runs. Reported: per seed and method the learning curve and the labels
needed, counted two ways: labeled training frames in all (the shared initial
ones included: what a user pays), and labels acquired beyond the shared initial
training set (what the selection spends); per method the median and a bootstrap
interval over seeds; the ratios of medians with a paired bootstrap interval;
and the force error of each iteration's ensemble on the frames it picked (does
the selection find the frames where the potential is wrong?). Last line:
``ratio_labels_active_to_random <x>`` (acquired labels), after the same for the
reference MD and for total labels.

``--temperatures`` replaces the demo's exploration temperatures (and with them
the held-out and reference-MD conditions): a user's target is often a range,
e.g. 300 600 900 K (CuI turns superionic near 640 K and melts near 880 K).
``--set section.key=value`` changes every campaign (e.g. ``training.max_epochs=40
training.patience=5`` for members trained until the validation loss stops
improving), ``--active-set`` the active campaigns only (e.g.
``selection.fill=true selection.diversity=features uncertainty.metric=force_mean
exploration.bias={strength: 0.5, width: auto}``).

Note that a reference MD pays for every MD step with the labeler, not only for
the frames kept: with ``steps_between`` 40, a kept frame costs 40 single points.
The label counts below count kept frames only, which favours that baseline.

Usage: .venv/bin/python benchmarks/active_vs_random.py [--seeds 1 2 3 4 5] [--parallel 2]
       [--temperatures 300 600 900] [--set KEY=VALUE ...] [--active-set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config"  # the demo campaign's config and structure
METHODS = ("active", "random", "reference_md")


def reference_md(config: dict, condition: int, n_frames: int, seed_label: str, out: Path) -> str:
    """GFN1-xTB MD frames at one exploration condition (almomd's reference MD)."""
    from almomd.evaluation import reference_md as reference
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.seeds import rng_for
    from almomd.settings import systems
    from almomd.settings.campaign import conditions
    from almomd.settings.sections import Settings

    if out.exists():
        return f"{out.name}: cached"
    spec = conditions(config)[condition]
    settings = config["heldout"]
    labeler = Labeler(
        LabelerSettings(name=config["labeler"]["name"], parameters=config["labeler"]["parameters"])
    )
    started = time.perf_counter()
    reference.reference_md(
        systems.structure(config, spec.system),
        labeler,
        reference.reference_settings(Settings.from_config(config).exploration, spec),
        spec,
        n_frames,
        settings["equilibration_steps"],
        settings["steps_between"],
        [rng_for(config["seed"], seed_label, condition)],
        str(out),
    )
    return f"{out.name}: {n_frames} frames at {spec.label} in {time.perf_counter() - started:.0f} s"


def demo_config(changes: dict | None = None) -> dict:
    from almomd.settings.schema import validate_config

    raw = yaml.safe_load((DEMO / "config.yaml").read_text())
    raw["system"]["structure"] = "CuI.xyz"
    return validate_config(apply_settings(raw, changes or {}), DEMO)


def parse_settings(items: list[str]) -> dict:
    """``section.key=value`` items (values in YAML) as ``{(section, key): value}``."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set/--active-set {item!r}: write section.key=value")
        found[tuple(key.split("."))] = yaml.safe_load(value)
    return found


def apply_settings(config: dict, changes: dict) -> dict:
    """``config`` with each ``{(section, ..., key): value}`` of ``changes`` set (in place)."""
    for path, value in changes.items():
        place = config
        for part in path[:-1]:
            place = place.setdefault(part, {})
        place[path[-1]] = value
    return config


@dataclass
class Run:
    """One snakemake campaign of the benchmark."""

    name: str
    workdir: Path
    config: dict
    files: dict[str, Path]
    after: list[str] = field(default_factory=list)
    prepare: object = None
    process: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0


def campaign_config(seed: int, method: str, iterations: int, changes: dict | None = None) -> dict:
    """The demo as a benchmark campaign: ``method``'s selection, the held-out file, no
    convergence stop, then ``changes`` (:func:`apply_settings`)."""
    config = yaml.safe_load((DEMO / "config.yaml").read_text())
    config["seed"] = seed
    config["max_iterations"] = iterations
    config["system"]["structure"] = "CuI.xyz"
    config["heldout"] = {"source": "file", "file": "heldout.extxyz"}
    config["convergence"] = {"force_rmse": None, "uncertain_fraction": None}
    config["selection"]["method"] = method
    return apply_settings(config, changes or {})


def finished_iterations(workdir: Path) -> int:
    """Iterations of a finished campaign in ``workdir`` (0 if none)."""
    status = workdir / "results" / "status.json"
    return len(json.loads(status.read_text())) if status.is_file() else 0


def snapshot_code(out: Path) -> Path:
    """Copy the package, workflow, config and profiles under test into ``out``: safe from edits."""
    snapshot = out / f"code-{os.getpid()}"
    for part in ("src", "workflow", "config", "profiles"):
        shutil.copytree(REPO / part, snapshot / part)
    return snapshot


def start(run: Run, snapshot: Path) -> None:
    """Start ``run``; a finished campaign with fewer iterations is continued, not redone,
    and an interrupted one (same config) resumes where it stopped."""
    extend = finished_iterations(run.workdir) > 0
    kept = run.workdir / "config.yaml"
    if not extend and kept.is_file() and yaml.safe_load(kept.read_text()) == run.config:
        # interrupted: its lock is stale; snakemake redoes only what is missing or incomplete
        shutil.rmtree(run.workdir / ".snakemake" / "locks", ignore_errors=True)
    elif extend:  # forget the last decision (max_iterations reached) and the summaries
        last = finished_iterations(run.workdir) - 1
        (run.workdir / "results" / f"iter_{last}" / "decision.json").unlink()
        (run.workdir / "results" / "status.json").unlink()
        shutil.rmtree(run.workdir / "results" / "report")
    else:
        if run.workdir.exists():
            shutil.rmtree(run.workdir)
        run.workdir.mkdir(parents=True)
        for name, path in run.files.items():
            shutil.copy(path, run.workdir / name)
        if run.prepare is not None:
            run.prepare(run)
    (run.workdir / "config.yaml").write_text(yaml.safe_dump(run.config))
    env = os.environ | {"PYTHONPATH": str(snapshot / "src")}
    command = [str(Path(sys.executable).parent / "snakemake"),
               "--snakefile", str(snapshot / "workflow" / "Snakefile"),
               "--directory", str(run.workdir), "--configfile", str(run.workdir / "config.yaml"),
               "--cores", "1", "--quiet", "--rerun-incomplete",
               "--rerun-triggers", "mtime"]  # fmt: skip
    log = (run.workdir / "snakemake.out").open("a")
    run.started = time.perf_counter()
    run.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def schedule(runs: list[Run], parallel: int, snapshot: Path) -> bool:
    """Run ``runs`` (respecting ``after``) ``parallel`` at a time; False if one failed."""
    done = {r.name for r in runs if finished_iterations(r.workdir) >= r.config["max_iterations"]}
    waiting, running = [r for r in runs if r.name not in done], []
    if done:
        print(f"  {len(done)} campaigns already finished", flush=True)
    while waiting or running:
        for run in [r for r in running if r.process.poll() is not None]:
            running.remove(run)
            run.seconds = time.perf_counter() - run.started
            if run.process.returncode != 0:
                print(f"{run.name} failed; see {run.workdir / 'snakemake.out'}", flush=True)
                return False
            done.add(run.name)
            print(f"  {run.name} done in {run.seconds:.0f} s", flush=True)
        for run in [r for r in waiting if all(a in done for a in r.after)]:
            if len(running) >= parallel:
                break
            waiting.remove(run)
            start(run, snapshot)
            running.append(run)
        time.sleep(2)
    return True


def curve(workdir: Path) -> list[tuple[int, float]]:
    """(labeled training frames, held-out force RMSE) per iteration of a finished campaign."""
    status = json.loads((workdir / "results" / "status.json").read_text())
    return [(row["n_train"], row["heldout_force_rmse"]) for row in status]


def labels_to_reach(points: list[tuple[int, float]], target: float) -> float:
    """Labels at which a learning curve first reaches ``target`` (linear between points)."""
    points = sorted(points)
    if points[0][1] <= target:
        return float(points[0][0])
    for (n0, e0), (n1, e1) in zip(points, points[1:], strict=False):
        if e1 <= target:
            return n0 + (e0 - target) / (e0 - e1) * (n1 - n0)
    return math.inf


def median_interval(values: list[float], rng: np.random.Generator) -> tuple[float, float, float]:
    """Median and 95 % percentile bootstrap interval over seeds."""
    values = np.asarray(values, dtype=float)
    picks = rng.integers(0, len(values), (4000, len(values)))
    medians = np.median(values[picks], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5], method="nearest")  # inf stays inf
    return float(np.median(values)), float(low), float(high)


def ratio_interval(
    a: list[float], b: list[float], rng: np.random.Generator
) -> tuple[float, float, float]:
    """Ratio of medians ``a / b`` with a bootstrap interval resampling seeds (paired)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    picks = rng.integers(0, len(a), (4000, len(a)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.median(a[picks], axis=1) / np.median(b[picks], axis=1)
        point = float(np.median(a) / np.median(b))
    ratios = np.nan_to_num(ratios, nan=np.inf)  # inf / inf: neither reached
    low, high = np.percentile(ratios, [2.5, 97.5], method="nearest")
    return point, float(low), float(high)


def picked_error(workdir: Path) -> float:
    """RMS force error of the iteration's ensemble on the frames it picked for labeling.

    The ensemble's forces were recorded with each explored frame (``ens_forces``);
    the labels tell the truth. Over all iterations with labels.
    """
    import ase.io

    squares, count = 0.0, 0
    for labels in sorted((workdir / "results").glob("iter_*/labels/labeled_*.extxyz")):
        if labels.stat().st_size == 0:
            continue
        explored = {
            a.info["al_id"]: a
            for f in labels.parent.parent.glob("explore/walker_*.extxyz")
            for a in ase.io.read(f, ":")
        }
        for atoms in ase.io.read(labels, ":"):
            error = explored[atoms.info["al_id"]].arrays["ens_forces"] - atoms.get_forces()
            squares += float((error**2).sum())
            count += error.size
    return math.sqrt(squares / count) if count else math.nan


def error_at(points: list[tuple[int, float]], labels: float) -> float:
    """Held-out error of a learning curve at ``labels`` (linear between points; nan outside)."""
    n, e = zip(*sorted(points), strict=True)
    return float(np.interp(labels, n, e)) if n[0] <= labels <= n[-1] else math.nan


def analyse(curves: dict, seeds: list[int], target: float, name: str) -> dict:
    """Labels each method needs to reach ``target``: per seed, medians and ratios."""
    print(f"\ntarget force RMSE {target:.4f} eV/A ({name}); inf: not reached")
    needed = {m: [labels_to_reach(curves[s][m], target) for s in seeds] for m in METHODS}
    initial = [curves[s]["active"][0][0] for s in seeds]
    acquired = {m: [n - i for n, i in zip(needed[m], initial, strict=True)] for m in METHODS}
    rng = np.random.default_rng(0)
    ratios: dict[str, dict[str, list[float]]] = {"total": {}, "acquired": {}}
    for kind, values, what in (
        ("total", needed, "labeled training frames (the shared initial ones included)"),
        ("acquired", acquired, "labels acquired beyond the shared initial training set"),
    ):
        print(f"{what}: median [95% bootstrap interval over seeds]")
        for method in METHODS:
            median, low, high = median_interval(values[method], rng)
            per_seed = ", ".join(f"{v:.1f}" for v in values[method])
            print(f"  {method:>12}  {median:.1f} [{low:.1f}, {high:.1f}]  per seed {per_seed}")
        for baseline in ("reference_md", "random"):
            ratio = ratio_interval(values["active"], values[baseline], rng)
            ratios[kind][baseline] = list(ratio)
            if math.isinf(np.median(values[baseline])):  # censored: a bound, not a value
                most = max(n for seed in seeds for n, _ in curves[seed][baseline])
                most -= 0 if kind == "total" else min(initial)
                bound = np.median(values["active"]) / most
                print(f"  ratio of medians active / {baseline}: < {bound:.3f} ({baseline} did not "
                      f"reach the target within its {most} labels in most seeds)")  # fmt: skip
                continue
            print(f"  ratio of medians active / {baseline}: {ratio[0]:.3f} "
                  f"[{ratio[1]:.3f}, {ratio[2]:.3f}]")  # fmt: skip
    return {"target": target, "labels_needed": needed, "labels_acquired": acquired,
            "ratios": ratios}  # fmt: skip


def reference_point(pool: Path, n_pool: int):
    """Prepare a reference-MD baseline run: the seed's initial training set plus pool frames."""
    import ase.io

    def prepare(run: Run) -> None:
        active = run.workdir.parent / run.name.replace(f"reference_md{n_pool}", "active")
        train = ase.io.read(active / "results" / "iter_0" / "train.extxyz", ":")
        frames = ase.io.read(pool, ":")
        rng = np.random.default_rng(run.config["seed"])
        chosen = sorted(rng.choice(len(frames), size=n_pool, replace=False).tolist())
        ase.io.write(
            run.workdir / "initial.extxyz", train + [frames[i] for i in chosen], format="extxyz"
        )
        shutil.copy(active / "results" / "data" / "test.extxyz", run.workdir / "test.extxyz")

    return prepare


def output_directory(out: str) -> Path:
    """Make the benchmark's output directory; one thread per job; work in the demo's directory."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    path = Path(out).resolve()  # relative to where the script was started
    os.chdir(DEMO)  # the demo structure is next to the demo config
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> int:
    from almomd.settings.campaign import conditions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--active-iterations", type=int, default=None,
                        help="iterations of the active campaigns (default: --iterations + 2, "
                        "as they may select fewer frames per iteration)")  # fmt: skip
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--heldout-frames", type=int, default=12, help="per temperature")
    parser.add_argument("--target", type=float, default=None, help="eV/A; default: see above")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "active_vs_random"))
    parser.add_argument("--analyse-only", action="store_true", help="read finished runs of --seeds")
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=None,
        help="exploration and held-out temperatures (K); default: the demo's",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting of every campaign (YAML value), e.g. training.patience=5",
    )
    parser.add_argument(
        "--active-set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a setting of the active campaigns only, e.g. selection.fill=true",
    )
    args = parser.parse_args()
    out = output_directory(args.out)
    started = time.perf_counter()
    changes = parse_settings(args.set)
    if args.temperatures:
        changes[("exploration", "temperatures")] = args.temperatures
    active_changes = changes | parse_settings(args.active_set)
    config = demo_config(changes)
    n_conditions = len(conditions(config))
    temperatures = ", ".join(c.label for c in conditions(config))
    per_iteration = config["selection"]["max_frames"]
    pool_frames = per_iteration * (args.iterations - 1) // n_conditions  # per condition
    points = [per_iteration * k for k in range(1, args.iterations)]
    active_iterations = args.active_iterations or args.iterations + 2
    if not args.analyse_only:
        snapshot = snapshot_code(out)
        print("reference MD (GFN1-xTB) at the exploration temperatures ...", flush=True)
        jobs = []
        with ProcessPoolExecutor(args.parallel) as pool:
            for c in range(n_conditions):
                jobs.append(pool.submit(reference_md, config, c, args.heldout_frames, "heldout",
                                        out / f"heldout_{c}.extxyz"))  # fmt: skip
                jobs.append(pool.submit(reference_md, config, c, pool_frames, "pool",
                                        out / f"pool_{c}.extxyz"))  # fmt: skip
            for job in jobs:
                print("  " + job.result(), flush=True)
        import ase.io

        for kind in ("heldout", "pool"):
            frames = [a for c in range(n_conditions)
                      for a in ase.io.read(out / f"{kind}_{c}.extxyz", ":")]  # fmt: skip
            ase.io.write(out / f"{kind}.extxyz", frames, format="extxyz")
        runs = []
        for seed in args.seeds:
            files = {
                "CuI.xyz": DEMO / "CuI.xyz",
                "heldout.extxyz": out / "heldout.extxyz",
            }
            for method, iterations, settings in (
                ("active", active_iterations, active_changes),
                ("random", args.iterations, changes),
            ):
                name = f"seed{seed}_{method}"
                runs.append(Run(name, out / name, campaign_config(seed, method, iterations,
                                                                  settings), files))  # fmt: skip
            for n_pool in points:
                config_b = campaign_config(seed, "active", 1, changes)
                config_b["initial_data"] = {"file": "initial.extxyz"}
                config_b["test_set"] = {"file": "test.extxyz"}
                config_b["exploration"]["steps"] = 20
                name = f"seed{seed}_reference_md{n_pool}"
                runs.append(Run(name, out / name, config_b, files, [f"seed{seed}_active"],
                                reference_point(out / "pool.extxyz", n_pool)))  # fmt: skip
        print(f"{len(runs)} campaigns, {args.parallel} at a time ...", flush=True)
        if not schedule(runs, args.parallel, snapshot):
            return 1
    curves = {}
    for seed in args.seeds:
        curves[seed] = {m: curve(out / f"seed{seed}_{m}") for m in ("active", "random")}
        first = curves[seed]["active"][:1]
        curves[seed]["reference_md"] = first + [
            curve(out / f"seed{seed}_reference_md{n}")[0] for n in points
        ]
    finals = [curves[seed][m][-1][1] for seed in args.seeds for m in METHODS]
    targets = {"reached by every run (largest final error)": max(finals),
               "stricter (median final error of all runs)": float(np.median(finals))}  # fmt: skip
    if args.target:
        targets = {"given": args.target}
    print(f"\nheld-out: {args.heldout_frames} GFN1-xTB MD frames at each of {temperatures}")
    print(f"settings of every campaign: {args.set or 'the demo'}; of the active ones also: "
          f"{args.active_set or 'nothing'}")  # fmt: skip
    for seed in args.seeds:
        print(f"seed {seed}: labeled training frames -> held-out force RMSE (eV/A)")
        for method in METHODS:
            text = "  ".join(f"{n}: {e:.4f}" for n, e in curves[seed][method])
            print(f"  {method:>12}  {text}")
    picked = {
        m: [picked_error(out / f"seed{s}_{m}") for s in args.seeds] for m in ("active", "random")
    }
    print("force RMSE of each iteration's ensemble on the frames it picked (eV/A), per seed:")
    for method, values in picked.items():
        print(f"  {method:>12}  " + "  ".join(f"{v:.4f}" for v in values))
    print("labels acquired per iteration (selection.max_frames is the budget), per seed:")
    per_iteration = {}
    for method in ("active", "random"):
        per_iteration[method] = [
            [int(b - a) for (a, _), (b, _) in pairwise(curves[s][method])] for s in args.seeds
        ]
        print(f"  {method:>12}  " + "  ".join(map(str, per_iteration[method])))
    summary = {"picked_error": picked, "labels_per_iteration": per_iteration, "error_at": {}}
    for labels in sorted({n for seed in args.seeds for n, _ in curves[seed]["random"]})[1:]:
        row = {m: [error_at(curves[s][m], labels) for s in args.seeds] for m in METHODS}
        summary["error_at"][labels] = row
        text = "  ".join(f"{m} {np.nanmedian(v):.4f}" for m, v in row.items())
        print(f"median held-out force RMSE at {labels} labels: {text}")
    for name, target in targets.items():
        summary[name] = analyse(curves, args.seeds, target, name)
    print(f"seeds {args.seeds}, wall time {time.perf_counter() - started:.0f} s")
    (out / "results.json").write_text(json.dumps(
        {"seeds": args.seeds, "curves": {str(s): c for s, c in curves.items()},
         "targets": summary}, indent=2))  # fmt: skip
    primary = summary[next(iter(targets))]["ratios"]
    total, gained = primary["total"], primary["acquired"]
    print(f"ratio_total_labels_active_to_reference_md {total['reference_md'][0]:.3f}")
    print(f"ratio_total_labels_active_to_random {total['random'][0]:.3f}")
    print(f"ratio_labels_active_to_reference_md {gained['reference_md'][0]:.3f}")
    print(f"ratio_labels_active_to_random {gained['random'][0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
