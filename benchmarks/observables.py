"""Is the MD right, and how many labels until it is? Observables against reference dynamics.

Two systems, each with its labeler's own MD as the truth of the dynamics:

``CuI``
    the demo (zincblende CuI, 32 atoms, GFN1-xTB from tblite) over the user's range
    300, 600 and 900 K (superionic Cu at high temperature, if GFN1-xTB gives it);
``Cu``
    fcc Cu (32 atoms) with EMT at 300 and 900 K: a metal, a labeler that is exact and
    cheap, so the reference dynamics are long and their intervals narrow.

Per system, the labeler's reference MD at every condition (``--trajectories``
independent trajectories of ``--frames`` frames ``--between`` steps apart, every
step kept: :mod:`almomd.evaluation.reference_md`) is made once: its kept frames are
the held-out set of every campaign (``heldout.file``), its trajectories the
reference dynamics (``observables.reference``). Per seed, three ways to spend labels,
each through the real snakemake with the observables measured every iteration
(:mod:`almomd.observables`: one MD trajectory per member with the reference's
protocol, RDF, VDOS, MSD, diffusion, sigma^A, stability, each with a combined
interval):

``active``  the campaign as configured (``selection.method: active``, the demo's fill);
``random``  the same with ``selection.method: random`` (as many frames per iteration);
``reference_md``  the seed's initial training set plus frames drawn uniformly from a
    second, independent labeler MD at the same conditions (as many as the others
    acquire), one ensemble per training-set size (a one-iteration campaign each).

Reported: per system, arm, seed and iteration the labels, the held-out force RMSE
with its interval, every observable's verdict per condition (and its distance or
ratio), whether the force-only verdict (the upper end of the force RMSE's interval
below ``--force-target``) and the observables' verdict disagree; the labels at
which every observable first agrees at every condition (inf: never); per arm the
median over seeds; the share of numbers whose combined interval holds the
reference value in the last iteration. Last lines:
``ratio_labels_to_observables_active_to_random <x>``,
``ratio_labels_to_observables_active_to_reference_md <x>`` (ratios of medians over
seeds and systems; nan when neither reached agreement) and
``observables_agree_final <k>/<n>`` (observable-condition pairs that agree in the
demo system's last active iteration, over its seeds).

Usage: .venv/bin/python benchmarks/observables.py [--systems CuI Cu] [--seeds 1 2 3]
       [--iterations 4] [--parallel 2] [--analyse-only]
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
    output_directory,
    reference_point,
    schedule,
    snapshot_code,
)

ARMS = ("active", "random", "reference_md")
NAMES = ("rdf", "vdos", "msd", "diffusion", "sigma_a", "stability")


@dataclass(frozen=True)
class System:
    name: str
    labeler: dict
    structure: Callable[[], object]  # the campaign's cell (ase.Atoms)
    temperatures: tuple[float, ...]
    force_target: float  # eV/A: the force-only verdict's target


def cui_cell():
    import ase.io

    return ase.io.read(DEMO / "CuI.xyz").repeat((2, 2, 1))


def cu_cell():
    from ase.build import bulk

    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))


SYSTEMS = {
    "CuI": System(
        "CuI",
        {"name": "tblite", "parameters": {"method": "GFN1-xTB"}},
        cui_cell,
        (300.0, 600.0, 900.0),
        0.04,
    ),
    "Cu": System("Cu", {"name": "emt"}, cu_cell, (300.0, 900.0), 0.02),
}


def reference(system: str, condition: int, kind: str, args, out: Path) -> str:
    """The labeler's MD at one condition: kept frames (``kind``.extxyz) and every step; the
    pool (frames for the reference-MD arm) needs no long spacing."""
    from almomd.evaluation import reference_md as md
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.seeds import rng_for
    from almomd.settings.campaign import Condition
    from almomd.settings.sections import Exploration

    frames, dynamics = out / f"{kind}_{condition}.extxyz", out / f"{kind}_{condition}.npz"
    if frames.exists():
        return f"{system} {frames.name}: cached"
    spec = SYSTEMS[system]
    temperature = spec.temperatures[condition]
    where = Condition(condition, temperature, None, system)
    exploration = Exploration(timestep=2.0, friction=0.02, temperatures=spec.temperatures)
    rngs = [
        rng_for(0, "observables-benchmark", system, kind, condition, t)
        for t in range(args.trajectories)
    ]
    started = time.perf_counter()
    md.reference_md(
        spec.structure(),
        Labeler(LabelerSettings(**spec.labeler)),
        md.reference_settings(exploration, where),
        where,
        args.frames * args.trajectories,
        40,
        args.between if kind == "heldout" else max(10, args.between // 4),
        rngs,
        str(frames),
        dynamics_out=str(dynamics),
    )
    seconds = time.perf_counter() - started
    return f"{system} {frames.name}: {temperature:g} K in {seconds:.0f} s"


def config_for(
    system: System, seed: int, arm: str, iterations: int, n_conditions: int, steps: int
) -> dict:
    """The demo's campaign on ``system`` with the shared held-out set and reference dynamics."""
    config = campaign_config(seed, "random" if arm == "random" else "active", iterations)
    config["system"] = {"structure": "cell.xyz", "supercell": [1, 1, 1]}
    config["labeler"] = dict(system.labeler, n_batches=2)
    config["exploration"]["temperatures"] = list(system.temperatures)
    config["observables"] = {
        "steps": steps,
        "nve_steps": 200,
        "reference": [f"dynamics_{c}.npz" for c in range(n_conditions)],
    }
    return config


def remeasured(workdir: Path, iteration: int) -> dict:
    """The iteration's verdicts per condition measured again from the trajectories the
    campaign kept (its member MD, the reference dynamics, the harmonic model) with the
    code as it is now; stability as the campaign's MD found it."""
    from almomd import layout
    from almomd.data.trajectories import read_trajectories
    from almomd.observables.anharmonicity import Harmonic
    from almomd.observables.measure import measure

    found = {}
    for path in sorted(workdir.glob(f"results/iter_{iteration}/observables/condition_*.json")):
        condition = int(path.stem.rsplit("_", 1)[1])
        kept = json.loads(path.read_text())
        harmonic = next(workdir.glob(layout.HARMONIC.format(system="*")), None)
        verdict, _ = measure(
            read_trajectories(
                layout.path(layout.OBSERVABLE_MD, workdir, iteration=iteration, condition=condition)
            ),
            read_trajectories(workdir / f"dynamics_{condition}.npz"),
            Harmonic.load(harmonic) if harmonic else None,
            blocks=4,
        )
        verdict["stability"] = kept["observables"]["stability"]
        found[kept["condition"]] = verdict
    return found


def iteration_rows(workdir: Path, target: float, again: bool = False) -> list[dict]:
    """Per iteration: labels, held-out force RMSE, the observables' verdicts per condition
    (``again``: measured again from the kept trajectories, :func:`remeasured`)."""
    status = json.loads((workdir / "results" / "status.json").read_text())
    rows = []
    for row in status:
        observed = remeasured(workdir, row["iteration"]) if again else row["observables"] or {}
        verdicts = {
            label: {name: rows_[name]["agree"] for name in NAMES if name in rows_}
            for label, rows_ in observed.items()
        }
        flags = [flag for v in verdicts.values() for flag in v.values()]
        ci = row["heldout_force_rmse_ci"] or [math.nan, math.nan]
        rows.append(
            {
                "iteration": row["iteration"],
                "labels": row["n_train"],
                "force_rmse": row["heldout_force_rmse"],
                "force_ci": ci,
                "force_ok": bool(ci[1] is not None and ci[1] < target),
                "observables": verdicts,
                "observables_ok": bool(flags) and all(f is True for f in flags),
                "agree": sum(f is True for f in flags),
                "judged": len(flags),
                "parts": {
                    label: {
                        name: rows_[name].get("parts", {})
                        for name in NAMES
                        if name in rows_ and name != "stability"
                    }
                    for label, rows_ in observed.items()
                },
            }
        )
    return rows


def labels_to_agreement(rows: list[dict]) -> float:
    """Labels of the first iteration at which every observable agrees everywhere (inf: never)."""
    return next((float(r["labels"]) for r in rows if r["observables_ok"]), math.inf)


def agreement_by_labels(runs: list[list[dict]]) -> dict[int, tuple[int, int]]:
    """Observable-condition pairs that agree, and those judged, summed over ``runs`` (one per
    seed) at each label count."""
    found: dict[int, list[int]] = {}
    for rows in runs:
        for r in rows:
            counts = found.setdefault(r["labels"], [0, 0])
            counts[0] += r["agree"]
            counts[1] += r["judged"]
    return {n: (k, m) for n, (k, m) in sorted(found.items())}


def agreement_figure(agreement: dict, path: Path) -> None:
    """Per system, the share of observable-conditions that agree against the labels, per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(agreement), figsize=(4.5 * len(agreement), 3.5), squeeze=False)
    for ax, (name, arms) in zip(axes[0], agreement.items(), strict=True):
        for arm, shares in arms.items():
            labels = list(shares)
            ax.plot(labels, [k / m for k, m in shares.values()], "o-", label=arm)
        ax.set(title=name, xlabel="labeled training frames", ylabel="observables agreeing")
        ax.set_ylim(0, 1.02)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def coverage(rows: list[dict]) -> tuple[int, int]:
    """Numbers of the last iteration whose combined interval holds the reference value."""
    held = total = 0
    for parts in rows[-1]["parts"].values():
        for found in parts.values():
            for value in found.values():
                if "reference" in value and value.get("agree") is not None:
                    total += 1
                    held += value["agree"]
    return held, total


def ratio(a: list[float], b: list[float]) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float(np.median(a) / np.median(b))
    return value


def describe(part: dict) -> str:
    if "distance" in part:
        return f"{part['distance']:.3f}/{part['tolerance']:.3f}"
    if part.get("ratio") is not None:
        return f"{part['ratio']:.2f}x"
    return "-"


def report(name: str, arm: str, seed: int, rows: list[dict]) -> None:
    for r in rows:
        lo, hi = r["force_ci"]
        verdicts = "; ".join(
            f"{label}: "
            + " ".join(f"{n}={'+' if f else ('-' if f is False else '?')}" for n, f in v.items())
            for label, v in r["observables"].items()
        )
        flag = (
            " FORCE AND DYNAMICS VERDICTS DISAGREE" if r["force_ok"] != r["observables_ok"] else ""
        )
        print(
            f"  {name} {arm} seed {seed} it{r['iteration']} labels {r['labels']}: "
            f"F {r['force_rmse']:.4f} [{lo:.4f}, {hi:.4f}]; {verdicts}{flag}"
        )
        for label, parts in r["parts"].items():
            text = "  ".join(
                f"{n} " + ",".join(f"{k} {describe(v)}" for k, v in p.items())
                for n, p in parts.items()
            )
            print(f"      {label}: {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--trajectories", type=int, default=2, help="reference MD per condition")
    parser.add_argument("--frames", type=int, default=6, help="held-out frames per trajectory")
    parser.add_argument("--between", type=int, default=80, help="steps between kept frames")
    parser.add_argument("--steps", type=int, default=500, help="observables.steps")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "observables"))
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument(
        "--remeasure",
        action="store_true",
        help="judge the kept trajectories again with the code as it is (not the campaign's)",
    )
    args = parser.parse_args()
    out = output_directory(args.out)
    started = time.perf_counter()
    import ase.io

    points = [8 * k for k in range(1, args.iterations)]  # the demo's max_frames, fill: true
    if not args.analyse_only:
        snapshot = snapshot_code(out)
        jobs = []
        with ProcessPoolExecutor(args.parallel) as pool:
            for name in args.systems:
                place = out / name
                place.mkdir(exist_ok=True)
                for c in range(len(SYSTEMS[name].temperatures)):
                    for kind in ("heldout", "pool"):
                        jobs.append(pool.submit(reference, name, c, kind, args, place))
            for job in jobs:
                print("  " + job.result(), flush=True)
        runs = []
        for name in args.systems:
            system, place = SYSTEMS[name], out / name
            n_conditions = len(system.temperatures)
            ase.io.write(place / "cell.xyz", system.structure())
            for kind in ("heldout", "pool"):
                frames = [
                    a
                    for c in range(n_conditions)
                    for a in ase.io.read(place / f"{kind}_{c}.extxyz", ":")
                ]
                ase.io.write(place / f"{kind}.extxyz", frames, format="extxyz")
            files = {"cell.xyz": place / "cell.xyz", "heldout.extxyz": place / "heldout.extxyz"}
            files |= {f"dynamics_{c}.npz": place / f"heldout_{c}.npz" for c in range(n_conditions)}
            for seed in args.seeds:
                for arm in ("active", "random"):
                    config = config_for(
                        system, seed, arm, args.iterations, n_conditions, args.steps
                    )
                    runs.append(
                        Run(f"seed{seed}_{arm}", place / f"seed{seed}_{arm}", config, files)
                    )
                for n_pool in points:
                    config = config_for(system, seed, "active", 1, n_conditions, args.steps)
                    config["initial_data"] = {"file": "initial.extxyz"}
                    config["test_set"] = {"file": "test.extxyz"}
                    config["exploration"]["steps"] = 20
                    run_name = f"seed{seed}_reference_md{n_pool}"
                    runs.append(
                        Run(
                            run_name,
                            place / run_name,
                            config,
                            files,
                            [f"seed{seed}_active"],
                            reference_point(place / "pool.extxyz", n_pool),
                        )
                    )
        # the runs of one system share names: schedule each system's in turn
        for name in args.systems:
            mine = [r for r in runs if r.workdir.parent == out / name]
            print(f"{name}: {len(mine)} campaigns, {args.parallel} at a time ...", flush=True)
            if not schedule(mine, args.parallel, snapshot):
                return 1
    needed: dict[str, dict[str, list[float]]] = {arm: {} for arm in ARMS}
    final, covered, disagreements = [0, 0], [0, 0], [0, 0]
    results, agreement = {}, {}
    for name in args.systems:
        system, place = SYSTEMS[name], out / name
        print(
            f"\n{name} ({', '.join(f'{t:g} K' for t in system.temperatures)}; force target "
            f"{system.force_target} eV/A): per iteration the held-out force RMSE [95% CI] and "
            "each observable's verdict (+ agrees, - disagrees, ? no verdict)"
        )
        results[name] = {}
        for seed in args.seeds:
            by_arm = {
                arm: iteration_rows(
                    place / f"seed{seed}_{arm}", system.force_target, args.remeasure
                )
                for arm in ("active", "random")
            }
            first = by_arm["active"][:1]
            by_arm["reference_md"] = first + [
                iteration_rows(
                    place / f"seed{seed}_reference_md{n}", system.force_target, args.remeasure
                )[0]
                for n in points
            ]
            results[name][seed] = by_arm
            for arm, rows in by_arm.items():
                report(name, arm, seed, rows)
                needed[arm].setdefault(name, []).append(labels_to_agreement(rows))
                disagreements[0] += sum(r["force_ok"] != r["observables_ok"] for r in rows)
                disagreements[1] += len(rows)
                held, total = coverage(rows)
                covered[0] += held
                covered[1] += total
            if name == "CuI" or name == args.systems[0]:
                last = by_arm["active"][-1]
                final[0] += last["agree"]
                final[1] += last["judged"]
        for arm in ARMS:
            values = needed[arm][name]
            print(
                f"  {name} {arm}: labels to every observable agreeing, per seed "
                f"{', '.join(f'{v:g}' for v in values)} (median {np.median(values):g})"
            )
        for arm in ARMS:  # short of every one: how many agree, by labels, over the seeds
            shares = agreement_by_labels([results[name][s][arm] for s in args.seeds])
            agreement.setdefault(name, {})[arm] = shares
            print(
                f"  {name} {arm}: observable-conditions agreeing by labels (all seeds) "
                + ", ".join(f"{n}: {k}/{m}" for n, (k, m) in shares.items())
            )
    pooled = {arm: [v for name in args.systems for v in needed[arm][name]] for arm in ARMS}
    print(
        f"\niterations whose force-only and observables verdicts disagree: "
        f"{disagreements[0]} of {disagreements[1]}"
    )
    print(
        f"numbers whose combined interval holds the reference value (last iterations): "
        f"{covered[0]} of {covered[1]}"
    )
    print(
        f"systems {args.systems}, seeds {args.seeds}, {args.iterations} iterations, "
        f"wall time {time.perf_counter() - started:.0f} s"
    )
    agreement_figure(agreement, out / "agreement.png")
    (out / "results.json").write_text(
        json.dumps({"seeds": args.seeds, "needed": needed, "runs": results}, indent=1, default=str)
    )
    print(
        f"ratio_labels_to_observables_active_to_random "
        f"{ratio(pooled['active'], pooled['random']):.3f}"
    )
    print(
        f"ratio_labels_to_observables_active_to_reference_md "
        f"{ratio(pooled['active'], pooled['reference_md']):.3f}"
    )
    print(f"observables_agree_final {final[0]}/{final[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
