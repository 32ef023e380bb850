"""Where a campaign's files live: the one module that knows the layout.

Paths are relative to the campaign directory (Snakemake's working directory).
The patterns hold Snakemake wildcards (``{iteration}``, ``{subset}``, ...): the
rules use them as they are; everything else fills them in with :func:`path`.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = "results"
ITERATION = RESULTS + "/iter_{iteration}"

# data of the whole campaign
INITIAL_CANDIDATES = RESULTS + "/initial/candidates.extxyz"
INITIAL_LABELED = RESULTS + "/initial/labels/labeled_{batch}.extxyz"
INITIAL_FAILED = RESULTS + "/initial/labels/failed_{batch}.extxyz"
TEST_SET = RESULTS + "/data/test.extxyz"
HELDOUT_SET = RESULTS + "/data/heldout.extxyz"
REFERENCE_MD = RESULTS + "/heldout/reference_{condition}.extxyz"
#: the reference MD's every recorded step (the reference dynamics of the observables)
REFERENCE_DYNAMICS = RESULTS + "/heldout/dynamics_{condition}.npz"
#: the harmonic model (force constants) of a system's ideal structure, for sigma^A
HARMONIC = RESULTS + "/heldout/harmonic_{system}.npz"
LABELER_CHECK = RESULTS + "/labeler/check.extxyz"  # one single point before any other label

# one iteration
TRAIN = ITERATION + "/train.extxyz"
SUBSET = ITERATION + "/subsets/subset_{subset}.extxyz"
MODELS = ITERATION + "/models"
MEMBER = MODELS + "/member_{subset}_{seed}.nequip.zip"
MEMBER_COMPILED = MODELS + "/member_{subset}_{seed}.nequip.pt2"
NOVELTY = MODELS + "/novelty.npz"  # the training set's environments, as the members see them
TRAINING_RUN = ITERATION + "/training/member_{subset}_{seed}"
WALKER = ITERATION + "/explore/walker_{walker}.extxyz"
TEST_METRICS = ITERATION + "/eval/metrics.json"
TEST_TABLE = ITERATION + "/eval/test_predictions.csv"
TEST_FORCES = ITERATION + "/eval/test_forces.txt"
HELDOUT_SUMMARY = ITERATION + "/eval/heldout.json"
HELDOUT_TABLE = ITERATION + "/eval/heldout_predictions.csv"
SELECTED = ITERATION + "/selection/selected.extxyz"
CANDIDATES = ITERATION + "/selection/candidates.csv"
SELECTION_SUMMARY = ITERATION + "/selection/summary.json"
LABELED = ITERATION + "/labels/labeled_{batch}.extxyz"
FAILED = ITERATION + "/labels/failed_{batch}.extxyz"
# observables of MLIP MD per condition: verdict, curves, the member trajectories
OBSERVABLES = ITERATION + "/observables/condition_{condition}.json"
OBSERVABLE_CURVES = ITERATION + "/observables/curves_{condition}.npz"
OBSERVABLE_MD = ITERATION + "/observables/md_{condition}.npz"
DECISION = ITERATION + "/decision.json"
#: the iteration decided again after the stop rules changed: its 2nd, 3rd, ... decision
REDECISION = ITERATION + "/decision_{redecision}.json"

# the campaign's summaries and production runs
STATUS = RESULTS + "/status.json"
REPORT_DIR = RESULTS + "/report"
#: the report's figures, in REPORT_DIR (written by almomd.reporting.report)
FIGURES = (
    "learning_curve.png",
    "parity.png",
    "uncertainty_error.png",
    "calibration.png",
    "exploration.png",
    "acceptance.png",
    "timings.png",
    "systems.png",
    "error_model.png",
    "rdf.png",
    "vdos.png",
    "msd.png",
    "sigma_a.png",
)
PRODUCTION_TRAJECTORY = RESULTS + "/production/md.extxyz"
PRODUCTION_SUMMARY = RESULTS + "/production/summary.json"
PRODUCTION_CLI = RESULTS + "/production/md_cli.extxyz"
#: almomd md --observables: an iteration's observables outside the workflow
PRODUCTION_OBSERVABLES = RESULTS + "/production/observables"

# job logs and Snakemake benchmark files (measured run times)
LOGS = "logs"
BENCHMARKS = "benchmarks"


def log(step: str, scope: str = "iter_{iteration}") -> str:
    """The log file pattern of ``step`` (e.g. ``train_{subset}_{seed}``) in ``scope``.

    ``scope`` is a subdirectory (an iteration, ``initial``, ...); "" for the campaign's.
    """
    return "/".join(filter(None, (LOGS, scope, f"{step}.log")))


def benchmark(step: str, scope: str = "iter_{iteration}") -> str:
    """The benchmark file pattern of ``step`` in ``scope`` (see :func:`log`)."""
    return "/".join(filter(None, (BENCHMARKS, scope, f"{step}.tsv")))


def path(pattern: str, root: Path | str = ".", **wildcards: object) -> Path:
    """``pattern`` with its wildcards filled in, under the campaign directory ``root``."""
    return Path(root, pattern.format(**wildcards))


def member_pattern(subset: int, seed: int) -> str:
    """The packaged model of member (``subset``, ``seed``), for any ``{iteration}``."""
    return MEMBER.format(iteration="{iteration}", subset=subset, seed=seed)


def walker_pattern(walker: int) -> str:
    """The logged frames of exploration walker ``walker``, for any ``{iteration}``."""
    return WALKER.format(iteration="{iteration}", walker=walker)


def member_file(iteration: int, subset: int, seed: int, compiled: bool = False) -> str:
    """The deployable model of ensemble member (``subset``, ``seed``) of ``iteration``."""
    pattern = MEMBER_COMPILED if compiled else MEMBER
    return pattern.format(iteration=iteration, subset=subset, seed=seed)


def batch_files(pattern: str, root: Path | str, iteration: int) -> list[Path]:
    """The existing files of every labeling batch of ``pattern`` (``LABELED``, ``FAILED``)."""
    return sorted(Path(root).glob(pattern.format(iteration=iteration, batch="*")))


def decision_number(root: Path | str, iteration: int) -> int:
    """How often ``iteration`` was decided: 1 for ``DECISION``, n for ``decision_n`` (0: never)."""
    place = Path(root, ITERATION.format(iteration=iteration))
    found = (re.fullmatch(r"decision_(\d+)\.json", p.name) for p in place.glob("decision_*.json"))
    again = [int(m.group(1)) for m in found if m]
    if again:
        return max(again)
    return 1 if path(DECISION, root, iteration=iteration).is_file() else 0


def decision_file(iteration: int, number: int) -> str:
    """The ``number``-th decision of ``iteration`` (1: the first, ``DECISION``)."""
    if number <= 1:
        return DECISION.format(iteration=iteration)
    return REDECISION.format(iteration=iteration, redecision=number)


def current_decision(root: Path | str, iteration: int) -> Path:
    """The decision of ``iteration`` as it stands: its last one (see :data:`REDECISION`)."""
    return Path(root, decision_file(iteration, decision_number(root, iteration)))


def iterations(root: Path | str = ".") -> list[int]:
    """The iterations that have a directory under the campaign's results, in order."""
    found = (re.fullmatch(r"iter_(\d+)", p.name) for p in Path(root, RESULTS).glob("iter_*"))
    return sorted(int(m.group(1)) for m in found if m)
