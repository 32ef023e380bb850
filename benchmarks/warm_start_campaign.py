"""Warm start over a whole campaign: training time and test error per iteration.

Two campaigns of the .test Cu/EMT system run side by side (one core each,
through the real snakemake command), set up as in ``active_vs_random.py``
(exploration and test set at 1200 K, initial data at 600 K, active selection
of 4 frames per iteration). They differ in training only:

- ``scratch``: every iteration trains its members from scratch for
  ``--epochs`` epochs (early stopping may end it sooner);
- ``warm``: from iteration 1 on, every member fine-tunes the same member of
  the previous iteration (``training.warm_start``) for ``--warm-epochs``
  epochs (``training.warm_start_epochs``).

Iteration 0 is the same in both. Prints, per iteration, the summed wall time
of the training jobs (Snakemake's benchmark files, ``nequip-train`` start-up
included) and the test force RMSE of both; the last lines are
``ratio_warm_train_time <warm / scratch, training of iterations 1 and on>``
and ``ratio_warm_final_rmse <warm / scratch, last iteration>``.
Usage: .venv/bin/python benchmarks/warm_start_campaign.py [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from active_vs_random import campaign_config, finish, prepare, start

from almomd.report import stage_timings

REPO = Path(__file__).resolve().parents[1]


def training_seconds(workdir: Path) -> dict[str, float]:
    """Summed wall time of the training jobs, per iteration (``iter_I``)."""
    timings = stage_timings(workdir / "benchmarks")
    train = timings[timings["stage"] == "train"]
    return train.groupby("iteration")["seconds"].sum().to_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--warm-epochs", type=int, default=6)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "warm_start_campaign"))
    args = parser.parse_args()
    out = Path(args.out)
    test_file = prepare(out)
    runs = {}
    for mode in ("scratch", "warm"):
        config = campaign_config("active", args.seed, args.iterations)
        config["training"].update(max_epochs=args.epochs, patience=args.epochs)
        if mode == "warm":
            config["training"].update(warm_start=True, warm_start_epochs=args.warm_epochs)
        workdir = out / mode
        runs[mode] = (workdir, start(workdir, config, test_file))
    status = finish(runs)
    if status is None:
        return 1
    seconds = {m: training_seconds(w) for m, (w, _) in runs.items()}
    print(f"seed {args.seed}: scratch {args.epochs} epochs, warm {args.warm_epochs} epochs")
    heads = ("train s scratch", "train s warm", "F rmse scratch", "F rmse warm", "labels")
    print(f"{'iter':>4} " + " ".join(f"{h:>15}" for h in heads))
    for s, w in zip(status["scratch"], status["warm"], strict=True):
        name = f"iter_{s['iteration']}"
        print(f"{s['iteration']:4d} {seconds['scratch'][name]:15.1f} {seconds['warm'][name]:15.1f} "
              f"{s['test_force_rmse']:15.4f} {w['test_force_rmse']:15.4f} "
              f"{s['n_train']:>7d}/{w['n_train']:<7d}")  # fmt: skip
    later = {m: sum(v for k, v in seconds[m].items() if k != "iter_0") for m in seconds}
    print(f"training time of iterations 1 and on: scratch {later['scratch']:.1f} s, "
          f"warm {later['warm']:.1f} s")  # fmt: skip
    print(f"ratio_warm_train_time {later['warm'] / later['scratch']:.3f}")
    final = {m: status[m][-1]["test_force_rmse"] for m in status}
    print(f"ratio_warm_final_rmse {final['warm'] / final['scratch']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
