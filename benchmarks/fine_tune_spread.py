"""How far apart must fine-tuned members start for their spread to mean something?

Members fine-tuned from one package start from identical weights. This benchmark
takes the training sets of finished ``benchmarks/foundation.py`` campaigns (its
``pretrained`` arm, iteration ``--iteration``: the frames active learning chose) and
trains, on each, the campaign's ensemble (K subsamples x M seeds, its settings)
once per start:

``scratch``      random weights, the campaign's ``max_epochs`` (the reference);
``x`` (a number) fine-tuning the foundation with ``training.start_perturbation: x``
                 (0: every member starts from the package's weights).

Each ensemble is judged without any selection or calibration on (1) the
campaign's held-out frames (the labeler's CuI MD at 300/600/900 K): force RMSE,
Spearman of the per-frame largest atomic force spread with the frame's force RMSE,
and RMS error over RMS spread; (2) with ``--defects`` (the CuI MD at 600 K of
``benchmarks/defect_uncertainty.py``: bulk, Cu vacancy, Cu interstitial, cells no
campaign labeled): per defect the defect/bulk ratio of the error over that of the
spread (overconfidence; 1 when the spread grows as the error does).

Last line: ``best_start_perturbation <x>``: the smallest perturbation (each costs some
accuracy) whose spread is honest on every campaign: RMS error over RMS spread on the
held-out frames within a factor 2 of 1, and overconfidence at most 1.25 on every
defect (nan: none is).

Usage: .venv/bin/python benchmarks/fine_tune_spread.py --campaigns benchmarks/foundation
       [--seeds 1 2 3] [--iteration 3] [--perturbations 0 0.05 0.1 0.2 0.5]
       [--defects DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from active_vs_random import REPO  # noqa: E402
from defect_uncertainty import rms  # noqa: E402


def train(campaign: Path, iteration: int, start: str, out: Path) -> list[str]:
    """The campaign's ensemble trained on its iteration's training set from ``start``."""
    from almomd.data.frames import read_frames
    from almomd.settings.schema import validate_config
    from almomd.settings.sections import Settings
    from almomd.stages import training

    models = out / "models"
    config = yaml.safe_load((campaign / "config.yaml").read_text())
    if start == "scratch":
        config["training"].update(start_from=None, start_perturbation=0.0)
        config["initial_data"].update(md_calculator="emt", md_pool=1)  # not run here
    else:  # absolute: the members train here, not in the campaign's directory
        package = str((campaign / config["training"]["start_from"]).resolve())
        config["training"].update(start_from=package, start_perturbation=float(start))
    settings = Settings.from_config(validate_config(config, campaign))
    ensemble = settings.ensemble
    pack = [(k, m) for k in range(ensemble.n_subsets) for m in range(ensemble.n_seeds)]
    wanted = [str(models / f"member_{k}_{m}.nequip.zip") for k, m in pack]
    if all(Path(p).is_file() for p in wanted):
        return wanted
    train_file = campaign / "results" / f"iter_{iteration}" / "train.extxyz"
    subsets = {}
    for k in range(ensemble.n_subsets):
        subsets[k] = str(out / f"subset_{k}.extxyz")
        training.subset(settings, iteration=iteration, index=k, train_file=str(train_file),
                        out=subsets[k])  # fmt: skip
    symbols = sorted({s for a in read_frames(train_file) for s in a.get_chemical_symbols()})
    training.train_pack(
        settings, iteration=iteration, pack=pack, elements=symbols, subset_files=subsets,
        run_dirs=[str(out / f"run_{k}_{m}") for k, m in pack], models_out=wanted,
        init_models=None if start == "scratch" else dict.fromkeys(pack, package),
        log_file=str(out / "train.log"),
    )  # fmt: skip
    return wanted


def per_frame(models: list[str], frames: list) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's force RMSE of the ensemble mean and its largest atomic force spread."""
    from almomd.ensemble.calculator import EnsembleCalculator
    from almomd.ensemble.uncertainty import force_spread

    calc = EnsembleCalculator(models)
    errors, spreads = [], []
    for truth in frames:
        atoms = truth.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        error = calc.results["forces"] - truth.get_forces()
        errors.append(np.sqrt(np.mean(error**2)))
        spreads.append(force_spread(calc.results["member_forces"]).max())
    return np.asarray(errors), np.asarray(spreads)


def judge(models: list[str], heldout: list, defects: dict[str, list]) -> dict:
    from scipy.stats import spearmanr

    error, spread = per_frame(models, heldout)
    found = {
        "force_rmse": rms(error),
        "spearman": float(spearmanr(spread, error).statistic),
        "error_to_spread": rms(error) / rms(spread),
    }
    if defects:
        cells = {name: per_frame(models, frames) for name, frames in defects.items()}
        bulk_error, bulk_spread = (rms(v) for v in cells["bulk"])
        for name in ("vacancy", "interstitial"):
            e, u = cells[name]
            found[f"{name}_rmse"] = rms(e)
            found[f"{name}_overconfidence"] = (rms(e) / bulk_error) / (rms(u) / bulk_spread)
    return found


SPREAD_FACTOR, GOAL_OVERCONFIDENCE = 2.0, 1.25


def honest_enough(result: dict) -> bool:
    """The spread is the error's size within :data:`SPREAD_FACTOR` on the held-out frames
    and grows on each defect at least as the error does, within the goal."""
    ratio = result["error_to_spread"]
    defects = [v for k, v in result.items() if k.endswith("_overconfidence")]
    return 1 / SPREAD_FACTOR <= ratio <= SPREAD_FACTOR and all(
        v <= GOAL_OVERCONFIDENCE for v in defects
    )


def main() -> int:
    import ase.io

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", default=str(REPO / "benchmarks" / "foundation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--iteration", type=int, default=3)
    parser.add_argument("--perturbations", nargs="+", default=["0", "0.05", "0.1", "0.2", "0.5"])
    parser.add_argument("--defects", default=None, help="reference_<cell>_<a|b>.extxyz here")
    args = parser.parse_args()
    campaigns = Path(args.campaigns)
    out = campaigns / "spread"
    started = time.perf_counter()
    defects = {}
    if args.defects:
        place = Path(args.defects)
        defects = {
            name: ase.io.read(place / f"reference_{cell}.extxyz", ":")
            for name, cell in (("bulk", "bulk_b"), ("vacancy", "vacancy_a"),
                               ("interstitial", "interstitial_a"))
        }  # fmt: skip
    starts = ["scratch", *args.perturbations]
    found: dict = {}
    for seed in args.seeds:
        campaign = campaigns / f"seed{seed}_pretrained"
        heldout = ase.io.read(campaign / "heldout.extxyz", ":")
        for start in starts:
            models = train(campaign, args.iteration, start, out / f"seed{seed}" / start)
            found.setdefault(start, {})[seed] = result = judge(models, heldout, defects)
            print(f"  seed {seed} {start:>7}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in result.items()), flush=True)  # fmt: skip
    print(f"\nmedians over seeds {args.seeds} (training set of iteration {args.iteration}):")
    for start in starts:
        medians = {k: np.median([found[start][s][k] for s in args.seeds])
                   for k in found[start][args.seeds[0]]}  # fmt: skip
        print(f"  {start:>7}: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
    (out / "results.json").write_text(json.dumps(found, indent=1))
    print(f"wall time {time.perf_counter() - started:.0f} s")
    honest = [
        x for x in args.perturbations
        if all(honest_enough(found[x][s]) for s in args.seeds)
    ]  # fmt: skip
    print(f"honest (error/spread within {SPREAD_FACTOR:g}x of 1, overconfidence <= "
          f"{GOAL_OVERCONFIDENCE} on every defect, every seed): {honest or 'none'}")  # fmt: skip
    print(f"best_start_perturbation {min(map(float, honest)) if honest else math.nan:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
