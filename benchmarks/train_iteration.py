"""Training one iteration's ensemble: where the time goes, and what packing and warm start save.

The demo's settings (CuI, 32 atoms, GFN1-xTB labels, 4 members of the demo's
size, 12 epochs): a training set of rattled frames and a held-out set of other
rattled frames, labeled once. The iteration trains on all the training frames;
the iteration before it trained on the first ``--previous`` of them (its
members are trained first, from scratch, outside the timing: a campaign paid
for them one iteration earlier). Side by side in one run, every member from
the same rendered NequIP config and derived seeds:

``two processes``
    per member ``nequip-train`` then ``nequip-package``, each a process of its
    own, from scratch (almomd before issue 16);
``members_per_job 1``
    per member one process that trains and packages (``almomd.training.nequip_run``:
    what a ``train_member`` job does);
``members_per_job P``
    the members in packs of P, one process per pack (what the ``train_pack_N``
    jobs of ``training.members_per_job: P`` do, through
    :func:`almomd.training.train_members`); P = 2 (the demo's setting) and all;
``members_per_job P, warm start``
    packs of P, each member fine-tuning its counterpart of the iteration before
    for ``training.warm_start_epochs`` (what the demo does from iteration 1 on);
    P = 2 and all.

The jobs run one after the other, so each way's time is the summed job time of
training the iteration (what a campaign pays for; side by side on several cores
the wall time shrinks for every way alike). Each way runs twice, in mirrored
order (A B ... B A: the load of a shared machine drifts); reported: the
mean time of each way, its parts (imports, training, packaging, as the
processes measured them) and the held-out force RMSE of each way's ensemble
(equal for the ways from scratch: derived seeds). Last lines:
``ratio_train_time_one_job_warm`` (all members in one job, warm-started),
``ratio_train_time_one_process`` (all members in one job, from scratch),
``ratio_train_time_scratch`` (the demo's ``members_per_job``, from scratch) and
``ratio_train_time`` (the demo's way: its packs, warm-started as its config
says), each against two processes per member, with the held-out errors printed
above them.

Usage: .venv/bin/python benchmarks/train_iteration.py [--members 4] [--frames 40] [--previous 24]
       [--warm-epochs N]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "config"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))

from almomd.settings.sections import Settings  # noqa: E402
from almomd.training.template import render_template, template_variables  # noqa: E402
from almomd.training.trainer import MemberRun, train_members  # noqa: E402


def labeled_frames(n: int, seed: int, stdev: float) -> list:
    """``n`` rattled copies of the demo's CuI supercell, labeled with GFN1-xTB."""
    import ase.io

    from almomd.data.frames import labeled_copy
    from almomd.labeling.labelers import Labeler, LabelerSettings
    from almomd.labeling.single_points import single_point

    base = ase.io.read(DEMO / "CuI.xyz").repeat((2, 2, 1))
    labeler = Labeler(LabelerSettings(name="tblite", parameters={"method": "GFN1-xTB"}))
    rng = np.random.default_rng(seed)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            atoms = base.copy()
            atoms.positions += rng.normal(0.0, stdev, atoms.positions.shape)
            energy, forces, _ = single_point(atoms, labeler.calculator(Path(tmp)), False)
            frames.append(labeled_copy(atoms, energy, forces, al_id=i))
    return frames


def member_runs(
    train_file: Path, work: Path, n: int, init_models: list[Path] | None = None
) -> list[MemberRun]:
    """``n`` members on ``train_file`` with fixed seeds, run and packaged under ``work``.

    ``init_models``: warm-start member m from ``init_models[m]``.
    """
    return [
        MemberRun(train_file, 100 + m, 200 + m, work / f"member_{m}",
                  work / f"member_{m}.nequip.zip", init_models[m] if init_models else None)
        for m in range(n)
    ]  # fmt: skip


def two_processes(config: dict, run: MemberRun) -> dict[str, float]:
    """nequip-train, then nequip-package: a process each, as almomd did before."""
    run_dir = Path(run.run_dir)
    run_dir.mkdir(parents=True)
    variables = template_variables(Settings.from_config(config), Path(run.train_file),
                                   ["Cu", "I"], run.seed, run.data_seed)  # fmt: skip
    rendered = render_template(None, variables)
    (run_dir / "nequip.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
    times = {}
    for step, command in (
        ("train_s", [str(BIN / "nequip-train"), "-cp", str(run_dir), "-cn", "nequip.yaml",
                     f"hydra.run.dir={run_dir / 'hydra'}"]),
        ("package_s", [str(BIN / "nequip-package"), "build",
                       str(run_dir / "hydra" / "best.ckpt"), str(run.model_out)]),
    ):  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, cwd=run_dir, check=True, capture_output=True)
        times[step] = time.perf_counter() - started
    return times


def children_cpu() -> float:
    """CPU seconds of the finished child processes so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def heldout_rmse(models: list[Path], frames: list) -> float:
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.evaluation.test_set import evaluate

    _, metrics, _ = evaluate(EnsembleCalculator([str(m) for m in models]), frames)
    return float(metrics["force_rmse"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="training frames")
    parser.add_argument(
        "--previous", type=int, default=24, help="frames of the iteration before (warm starts)"
    )
    parser.add_argument(
        "--warm-epochs", type=int, help="epochs of a warm start (default: the demo's)"
    )
    args = parser.parse_args()
    import ase.io

    from almomd.settings.schema import validate_config

    started = time.perf_counter()
    train, held = labeled_frames(args.frames, 1, 0.08), labeled_frames(12, 2, 0.12)
    print(f"{args.frames} training and 12 held-out frames labeled in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    config = yaml.safe_load((DEMO / "config.yaml").read_text())
    config = validate_config(config, DEMO, check_files=False)
    training = config["training"]
    if args.warm_epochs:
        training["warm_start_epochs"] = args.warm_epochs
    demo_pack, demo_warm = training["members_per_job"], training["warm_start"]
    sizes = sorted({1, demo_pack, args.members})
    # (name, members per job, warm start)
    ways = [("two processes", 1, False)]
    ways += [(f"members_per_job {size}", size, False) for size in sizes]
    ways += [(f"members_per_job {size}, warm start", size, True)
             for size in sorted({demo_pack, args.members})]  # fmt: skip
    names = [name for name, _, _ in ways]
    order = [*ways, *reversed(ways)]  # mirrored, so that every way sees the same load drift
    seconds = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    parts = {name: dict.fromkeys(("import_s", "train_s", "package_s"), 0.0) for name in names}
    rmse = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ase.io.write(root / "train.extxyz", train, format="extxyz")
        ase.io.write(root / "previous.extxyz", train[: args.previous], format="extxyz")
        started = time.perf_counter()
        previous = member_runs(root / "previous.extxyz", root / "previous", args.members)
        train_members(Settings.from_config(config), ["Cu", "I"], previous)
        previous_models = [Path(run.model_out) for run in previous]
        print(f"the iteration before: {args.members} members on {args.previous} frames in "
              f"{time.perf_counter() - started:.0f} s (not timed below), held-out force RMSE "
              f"{heldout_rmse(previous_models, held):.4f} eV/A", flush=True)  # fmt: skip
        for turn, (name, size, warm) in enumerate(order):
            work = root / f"{turn}_{name.replace(' ', '_').replace(',', '')}"
            runs = member_runs(root / "train.extxyz", work, args.members,
                               previous_models if warm else None)  # fmt: skip
            started, cpu_before = time.perf_counter(), children_cpu()
            if name == "two processes":
                times = [two_processes(config, run) for run in runs]
            else:
                times = []
                for first in range(0, len(runs), size):
                    times += train_members(
                        Settings.from_config(config), ["Cu", "I"], runs[first : first + size]
                    )
            elapsed = time.perf_counter() - started
            seconds[name] += elapsed / 2
            cpu[name] += (children_cpu() - cpu_before) / 2
            for key in parts[name]:
                parts[name][key] += sum(t.get(key, 0.0) for t in times) / 2
            rmse[name] = heldout_rmse([run.model_out for run in runs], held)
            print(f"{name:>32}: {elapsed:6.1f} s  held-out force RMSE {rmse[name]:.4f} eV/A",
                  flush=True)  # fmt: skip
    print("mean of the two turns: time, CPU (in-process parts: imports, training, packaging):")
    for name in names:
        print(f"{name:>32}: {seconds[name]:6.1f} s  {cpu[name]:6.1f} s CPU  ("
              + ", ".join(f"{k} {v:.1f}" for k, v in parts[name].items()) + ")")  # fmt: skip
    base = seconds["two processes"]
    scratch = [name for name, _, warm in ways if not warm]
    warm_name = f"members_per_job {demo_pack}, warm start"
    print(f"{args.members} members, {training['max_epochs']} epochs from scratch, "
          f"{training['warm_start_epochs'] or training['max_epochs']} warm-started, "
          f"{args.frames} frames ({args.previous} the iteration before); held-out RMSE "
          f"equal in every way from scratch: "
          f"{len({round(rmse[name], 6) for name in scratch}) == 1}")  # fmt: skip
    print(f"held-out force RMSE warm start / from scratch: "
          f"{rmse[warm_name] / rmse['two processes']:.3f} "
          f"({rmse[warm_name]:.4f} against {rmse['two processes']:.4f} eV/A)")  # fmt: skip
    for name in names[1:]:
        print(f"{name} / two processes: time {seconds[name] / base:.3f}, "
              f"CPU {cpu[name] / cpu['two processes']:.3f}")  # fmt: skip
    one_job = f"members_per_job {args.members}"
    print(f"held-out force RMSE one job warm-started / from scratch: "
          f"{rmse[one_job + ', warm start'] / rmse['two processes']:.3f}")  # fmt: skip
    demo_way = warm_name if demo_warm else f"members_per_job {demo_pack}"
    print(f"the demo trains with members_per_job {demo_pack}, warm_start {demo_warm}: {demo_way}")
    print(f"ratio_train_time_one_job_warm {seconds[one_job + ', warm start'] / base:.3f}")
    print(f"ratio_train_time_one_process {seconds[one_job] / base:.3f}")
    print(f"ratio_train_time_scratch {seconds[f'members_per_job {demo_pack}'] / base:.3f}")
    print(f"ratio_train_time {seconds[demo_way] / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
