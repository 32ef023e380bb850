"""How well does the cost model predict an iteration from the iterations before it?

For every finished iteration ``i >= 1`` of a campaign, the cost model
(:mod:`almomd.planning.costs`) is fitted to the benchmark files of the initial jobs and
of iterations ``< i`` only, and predicts every job iteration ``i`` ran from its
work units (the training set of iteration ``i`` is known when it starts; the
rest comes from the config). The prediction is compared with the measured job
times (Snakemake benchmark files, summed over the iteration's jobs).

Usage: .venv/bin/python benchmarks/budget_accuracy.py CAMPAIGN_DIR [CAMPAIGN_DIR ...]
       [--configfile NAME]  (relative to each campaign directory; default config/config.yaml)

Prints, per campaign and iteration, predicted and measured seconds per rule
and in total (iteration 0 too, from the initial jobs and the first guesses of
:data:`almomd.planning.costs.FIRST_GUESS`, apart); last line
``ratio_predicted_to_actual <x>``: predicted over measured job time summed
over every predicted iteration of every campaign.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd


def predict_iteration(root: Path, config: dict, iteration: int) -> dict[str, tuple[float, float]]:
    """Per rule: (predicted, measured) seconds summed over the jobs iteration ``iteration`` ran."""
    from almomd import layout
    from almomd.planning import costs, measured

    facts = costs.campaign(config, root, upto=iteration)
    fitted = costs.fit_all(measured.measurements(root, facts, before=iteration))
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for path in sorted(Path(root, layout.BENCHMARKS, f"iter_{iteration}").glob("*.tsv")):
        found = measured.measured_units(path, root, facts)
        if found is None:
            continue
        rule = found[0]
        job = path.stem if rule == "train_pack" else rule  # train_pack_N: its pack's members
        kind, _, rest = path.stem.partition("_")
        wildcards = {"iteration": str(iteration), "walker": rest, "batch": rest}
        totals[rule][0] += fitted[rule].seconds(facts.units(job, wildcards))
        totals[rule][1] += float(pd.read_csv(path, sep="\t")["s"].sum())
    return {rule: (p, m) for rule, (p, m) in totals.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("campaigns", nargs="+", type=Path)
    parser.add_argument("--configfile", default="config/config.yaml")
    args = parser.parse_args()
    from almomd.settings.schema import load_config

    predicted_sum = measured_sum = 0.0
    for root in args.campaigns:
        root = root.resolve()
        os.chdir(root)
        config = load_config(root / args.configfile, check_files=False)
        from almomd import layout

        for iteration in layout.iterations(root):
            rules = predict_iteration(root, config, iteration)
            if not rules:
                continue
            predicted = sum(p for p, _ in rules.values())
            measured = sum(m for _, m in rules.values())
            detail = ", ".join(f"{r} {p:.0f}/{m:.0f}" for r, (p, m) in sorted(rules.items()))
            note = "" if iteration else " [first guesses; not in the ratio]"
            ratio = predicted / measured
            print(f"{root.name} iteration {iteration}: predicted {predicted:.0f} s, measured "
                  f"{measured:.0f} s, ratio {ratio:.2f} ({detail}){note}")  # fmt: skip
            if iteration:
                predicted_sum += predicted
                measured_sum += measured
    if not measured_sum:
        print("no iteration after the first has benchmark files: run a campaign first")
        return 1
    print(f"total: predicted {predicted_sum:.0f} s, measured {measured_sum:.0f} s of job time")
    print(f"ratio_predicted_to_actual {predicted_sum / measured_sum:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
