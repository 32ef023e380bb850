# Validation, constants and input functions shared by all rules.
import json
from pathlib import Path

from almomd.config import ConfigError, members, validate_config, walkers
from almomd.ensemble import metric_key
from almomd.heldout import conditions
from almomd.report import FIGURES

try:
    config.update(validate_config(config, Path.cwd()))
except ConfigError as error:
    raise WorkflowError(f"invalid configuration: {error}") from None

MEMBERS = members(config)
WALKERS = walkers(config)
N_BATCHES = config["labeler"]["n_batches"]
MAX_ITERATIONS = config["max_iterations"]
HELDOUT = config["heldout"]["source"]
CONDITIONS = conditions(config)
GENERATE_INITIAL = config["initial_data"]["file"] is None
SUFFIX = ".nequip.pt2" if config["training"]["compile"] else ".nequip.zip"
UNCERTAINTY_KEY = "u_" + metric_key(
    config["uncertainty"]["metric"], config["uncertainty"]["kind"]
)


wildcard_constraints:
    iteration="0|[1-9][0-9]*",
    next_iteration="[1-9][0-9]*",
    subset="[0-9]+",
    seed="[0-9]+",
    walker="[0-9]+",
    batch="[0-9]+",
    condition="[0-9]+",


def member_models(wildcards):
    """Every deployable member model of the iteration."""
    return [
        f"results/iter_{wildcards.iteration}/models/member_{k}_{m}{SUFFIX}"
        for k, m in MEMBERS
    ]


def train_inputs(wildcards):
    """A member's subset, and with training.warm_start its previous iteration's model."""
    iteration = int(wildcards.iteration)
    inputs = {
        "subset": f"results/iter_{iteration}/subsets/subset_{wildcards.subset}.extxyz"
    }
    if config["training"]["warm_start"] and iteration > 0:
        inputs["init"] = (
            f"results/iter_{iteration - 1}/models/"
            f"member_{wildcards.subset}_{wildcards.seed}.nequip.zip"
        )
    return inputs


def walker_trajectories(wildcards):
    """Every exploration walker's logged frames of the iteration."""
    return [
        f"results/iter_{wildcards.iteration}/explore/walker_{w.index}.extxyz"
        for w in WALKERS
    ]


def _batches(prefix, name):
    return [f"{prefix}/{name}_{b}.extxyz" for b in range(N_BATCHES)]


def initial_labels(wildcards):
    if not GENERATE_INITIAL:
        return {}
    return {
        "candidates": "results/initial/candidates.extxyz",
        "labeled": _batches("results/initial/labels", "labeled"),
        "failed": _batches("results/initial/labels", "failed"),
    }


def previous_iteration(wildcards):
    """The inputs of the next training set: the previous one and its new labels."""
    prev = f"results/iter_{int(wildcards.next_iteration) - 1}"
    return {
        "train": f"{prev}/train.extxyz",
        "selected": f"{prev}/selection/selected.extxyz",
        "labeled": _batches(f"{prev}/labels", "labeled"),
        "failed": _batches(f"{prev}/labels", "failed"),
    }


def heldout_sources(wildcards):
    """The files the fixed held-out set is made of: reference MD per condition, or the user's."""
    if HELDOUT == "file":
        return [config["heldout"]["file"]]
    return [f"results/heldout/reference_{c.index}.extxyz" for c in CONDITIONS]


def heldout_frames(wildcards):
    """Held-out frames of an iteration's evaluation (see almomd.heldout).

    audit: the label files of the earlier iterations (their audit frames are
    used); none for test_set and at iteration 0 of audit (the test set is used).
    """
    iteration = int(wildcards.iteration)
    if HELDOUT in ("reference_md", "file"):
        return ["results/data/heldout.extxyz"]
    if HELDOUT == "audit":
        return [
            f"results/iter_{i}/labels/labeled_{b}.extxyz"
            for i in range(iteration)
            for b in range(N_BATCHES)
        ]
    return []


def selection_history(wildcards):
    """Selection summaries of iterations 0 .. i (the uncertainty criterion's history)."""
    return [
        f"results/iter_{i}/selection/summary.json"
        for i in range(int(wildcards.iteration) + 1)
    ]


def campaign_decisions(wildcards):
    """Decisions of all iterations run, following the checkpoints until one stops."""
    if config["plan_all_iterations"]:
        return [f"results/iter_{i}/decision.json" for i in range(MAX_ITERATIONS)]
    decisions = []
    for i in range(MAX_ITERATIONS):
        path = checkpoints.decide.get(iteration=i).output[0]
        decisions.append(path)
        if json.loads(Path(path).read_text())["stop"]:
            break
    return decisions
