# Validation, constants and input functions shared by all rules.
import ast
import json
import sys
from pathlib import Path

from almomd import layout, lineage
from almomd.ensemble.uncertainty import ERROR_MODEL_METRICS
from almomd.errors import ConfigError
from almomd.evaluation.convergence import redecided
from almomd.settings.files import chemical_symbols
from almomd.settings.history import check_unchanged_layout
from almomd.settings.campaign import member_packs, walker_packs
from almomd.settings.schema import read_config_file, validate_config
from almomd.settings.sections import Settings
from almomd.planning.jobs import (
    WALKER_PACK_RULE,
    pack_resources,
    pack_rule,
    rule_resources,
    walker_pack_rule,
)
from almomd.layout import FIGURES

try:
    # refuse what Snakemake's YAML reading accepts (a key given twice)
    for path_ in workflow.configfiles:
        read_config_file(path_)
    completed = validate_config(config, Path.cwd())
    config.clear()  # the completed config replaces the given one (system becomes systems)
    config.update(completed)
    check_unchanged_layout(config, Path.cwd())
except ConfigError as error:
    raise WorkflowError(f"invalid configuration: {error}") from None


SETTINGS = Settings.from_config(config)  # the validated config, typed
MEMBERS = SETTINGS.members()
# training.members_per_job > 1: the members trained together, a rule per pack
PACKS = member_packs(config) if SETTINGS.training.members_per_job > 1 else []
WALKERS = SETTINGS.walkers()
# exploration.walkers_per_job > 1: the walkers run together, a rule per pack
WALKER_PACKS = walker_packs(config) if SETTINGS.exploration.walkers_per_job > 1 else []
N_BATCHES = SETTINGS.labeler.n_batches
MAX_ITERATIONS = SETTINGS.max_iterations
HELDOUT = SETTINGS.heldout.source
# the uncertainty's error model is fitted with the novelty reference, on the held-out frames
ERROR_MODEL = SETTINGS.uncertainty.metric in ERROR_MODEL_METRICS
CONDITIONS = SETTINGS.conditions()
# observables of MLIP MD per iteration and condition (rules in observables.smk)
OBSERVABLES = SETTINGS.observables.enabled
GENERATE_INITIAL = SETTINGS.initial_data.file is None
COMPILED = SETTINGS.training.compile
ELEMENTS = chemical_symbols(config, Path.cwd())
UNCERTAINTY_KEY = SETTINGS.uncertainty.column
ITERATIONS_BEGUN = layout.iterations(Path.cwd())


def check_campaign_files():
    """Stop before any job if files that finished steps were made from are gone.

    Snakemake does not remake a missing input of a finished step: the campaign
    would look finished ("Nothing to be done") without the file. almomd.lineage
    says what to delete, or which files to request by name: a file remade exactly
    (a training set, an ensemble member) is remade then without redoing what used it.
    """
    root = Path.cwd()
    requested = {str(Path(arg).resolve()) for arg in sys.argv[1:]}

    def asked(targets):
        return {str(Path(t).resolve()) for t in targets}

    for summary in lineage.unreadable_summaries(root):
        if DRY_RUN:  # a dry run writes and deletes nothing
            print(f"{summary} cannot be read (truncated?): a run writes it again")
            continue
        print(
            f"{summary} cannot be read (truncated?): it is written again",
            file=sys.stderr,
        )
        Path(summary).unlink()
    found = lineage.damage(root, len(WALKERS), N_BATCHES, GENERATE_INITIAL)
    targets = lineage.requests(found)  # to be asked for one at a time, in order
    if found and not (targets and requested & asked(targets) == asked(targets[:1])):
        raise WorkflowError(lineage.advice(found))
    lost = lineage.lost_members(root, MEMBERS, COMPILED)
    if lost and not asked(lost) <= requested:
        raise WorkflowError(
            f"iterations that ran lack ensemble members: {' '.join(lost)}. Train them "
            "again, the same seeded models, without redoing what used them: "
            f"snakemake --cores N {' '.join(lost)}"
            + (
                " (training.members_per_job: the other members of their jobs are "
                "trained again with them, the same models)"
                if PACKS
                else ""
            )
        )


# snakemake -n (--dry-run): plan only, touch no file
DRY_RUN = bool(getattr(workflow.output_settings, "dryrun", False))
if workflow.is_main_process:
    check_campaign_files()


def settings(*sections):
    """The config sections a step uses, handed to its script as ``params.settings``."""
    return {name: config[name] for name in sections}


wildcard_constraints:
    iteration="0|[1-9][0-9]*",
    next_iteration="[1-9][0-9]*",
    subset="[0-9]+",
    seed="[0-9]+",
    walker="[0-9]+",
    batch="[0-9]+",
    condition="[0-9]+",
    system="[A-Za-z0-9_.-]+",
    redecision="[2-9]|[1-9][0-9]+",


def ensemble_files(iteration):
    """Every deployable member model of ``iteration``: exactly the config's K x M."""
    return [layout.member_file(iteration, k, m, COMPILED) for k, m in MEMBERS]


def member_models(wildcards):
    """The iteration's ensemble, as input of the steps that use it.

    ancient(): a member trained again (after it was deleted) is the same
    seeded model, so the exploration and evaluations that used it stay done.
    """
    return [ancient(path) for path in ensemble_files(int(wildcards.iteration))]


def previous_walkers(wildcards, walkers=None):
    """The walkers' frames of the previous iteration, where they go on from them
    (exploration.continue_walkers): the walker of ``wildcards``, or ``walkers``.

    ancient(): a remade previous walker is the same seeded run.
    """
    iteration = int(wildcards.iteration)
    if not SETTINGS.exploration.continues(iteration):
        return []
    walkers = [int(wildcards.walker)] if walkers is None else walkers
    return [
        ancient(layout.WALKER.format(iteration=iteration - 1, walker=w))
        for w in walkers
    ]


def packaged_members(wildcards):
    """The iteration's packaged members (their features: compiled ones give none)."""
    iteration = int(wildcards.iteration)
    return [ancient(layout.member_file(iteration, k, m)) for k, m in MEMBERS]


def member_start(iteration, subset, seed):
    """The model a member starts from: with training.warm_start its previous iteration's
    member, else training.start_from's package (None: from scratch)."""
    if SETTINGS.training.warm_start and iteration > 0:
        return ancient(layout.member_file(iteration - 1, subset, seed))
    if SETTINGS.training.start_from is not None:
        return ancient(SETTINGS.training.start_from)
    return None


def initial_md_model(wildcards):
    """The package the initial MD runs with, if it runs with one (initial_data.md_calculator)."""
    package = SETTINGS.initial_md_package()
    has_md = (
        round(SETTINGS.initial_data.md_fraction * SETTINGS.initial_data.n_frames) > 0
    )
    return {"model": ancient(package)} if package and has_md else {}


def train_inputs(wildcards):
    """A member's subset, and the model it starts from (member_start)."""
    iteration = int(wildcards.iteration)
    inputs = {"subset": layout.SUBSET.format(**wildcards)}
    start = member_start(iteration, int(wildcards.subset), int(wildcards.seed))
    if start is not None:
        inputs["init"] = start
    return inputs


def pack_inputs(pack):
    """The input function of a pack's rule: its members' subsets (and warm starts)."""

    def inputs(wildcards):
        iteration = int(wildcards.iteration)
        found = {
            f"subset_{k}": layout.SUBSET.format(iteration=iteration, subset=k)
            for k in sorted({k for k, _ in pack})
        }
        for k, m in pack:
            start = member_start(iteration, k, m)
            if start is not None:
                found[f"init_{k}_{m}"] = start
        return found

    return inputs


def profile_resources(rule):
    """What --set-resources (a profile's set-resources) gives ``rule``, as given.

    Snakemake keeps each as an expression to evaluate per job; a number stays a
    number, anything else (a partition's name) the string it was.
    """
    given = workflow.resource_settings.overwrite_resources.get(rule) or {}
    found = {}
    for name, value in given.items():
        raw = getattr(value, "raw", value)
        try:
            found[name] = ast.literal_eval(raw) if isinstance(raw, str) else raw
        except (ValueError, SyntaxError):
            found[name] = raw
    return found


def walker_trajectories(wildcards):
    """Every exploration walker's logged frames of the iteration."""
    return [
        layout.WALKER.format(iteration=wildcards.iteration, walker=w.index)
        for w in WALKERS
    ]


# every labeling job waits for the labeler's check, in a campaign started with it (one of
# an earlier version labels on without it, redoing nothing); decided once, at the start
LABELER_CHECKED = (
    {"labeler_check": layout.LABELER_CHECK}
    if lineage.labeler_checked(Path.cwd())
    else {}
)


# the reference MD keeps its dynamics, but in a campaign whose reference MD ran without
# them (an earlier version): it is not run again, and its observables have no reference
REFERENCE_OUTPUTS = {"frames": protected(layout.REFERENCE_MD)}
if lineage.keeps_reference_dynamics(Path.cwd()):
    REFERENCE_OUTPUTS["dynamics"] = protected(layout.REFERENCE_DYNAMICS)


def labeler_checked(wildcards):
    return LABELER_CHECKED


def _batches(pattern, **values):
    return [pattern.format(batch=b, **values) for b in range(N_BATCHES)]


def initial_labels(wildcards):
    if not GENERATE_INITIAL:
        return {}
    return {
        "candidates": layout.INITIAL_CANDIDATES,
        "labeled": _batches(layout.INITIAL_LABELED),
        "failed": _batches(layout.INITIAL_FAILED),
    }


def previous_iteration(wildcards):
    """The inputs of the next training set: the previous one and its new labels."""
    prev = int(wildcards.next_iteration) - 1
    return {
        # ancient: a training set remade from its intact inputs is the same frames
        "train": ancient(layout.TRAIN.format(iteration=prev)),
        "selected": layout.SELECTED.format(iteration=prev),
        "labeled": _batches(layout.LABELED, iteration=prev),
        "failed": _batches(layout.FAILED, iteration=prev),
    }


def heldout_sources(wildcards):
    """The files the fixed held-out set is made of: reference MD per condition, or the user's."""
    if HELDOUT == "file":
        return [SETTINGS.heldout.file]
    return [layout.REFERENCE_MD.format(condition=c.index) for c in CONDITIONS]


def heldout_frames(wildcards):
    """Held-out frames of an iteration's evaluation (see almomd.evaluation.heldout).

    audit: the label files of the earlier iterations (their audit frames are
    used); none for test_set and at iteration 0 of audit (the test set is used).
    """
    iteration = int(wildcards.iteration)
    if HELDOUT in ("reference_md", "file"):
        return [layout.HELDOUT_SET]
    if HELDOUT == "audit":
        return [
            f for i in range(iteration) for f in _batches(layout.LABELED, iteration=i)
        ]
    return []


def error_model_frames(wildcards):
    """The frames the error model is fitted on: the held-out frames (none: no error model)."""
    return heldout_frames(wildcards) if ERROR_MODEL else []


def error_model_test_set(wildcards):
    """The test set, where the error model falls back on it (none: no error model)."""
    return [ancient(layout.TEST_SET)] if ERROR_MODEL else []


def reference_dynamics(wildcards):
    """The reference dynamics of a condition: the user's (observables.reference), else the
    labeler's MD (none for other held-out sources)."""
    given = SETTINGS.observables.reference
    if given:
        return [given[int(wildcards.condition)]]
    if HELDOUT != "reference_md" or "dynamics" not in REFERENCE_OUTPUTS:
        return []
    return [ancient(layout.REFERENCE_DYNAMICS.format(condition=wildcards.condition))]


def harmonic_model(wildcards):
    """The harmonic model of the condition's system (sigma^A's reference)."""
    system = CONDITIONS[int(wildcards.condition)].system
    return [ancient(layout.HARMONIC.format(system=system))]


def iteration_observables(wildcards):
    """The iteration's observables at every condition (none without observables)."""
    if not OBSERVABLES:
        return []
    return [
        layout.OBSERVABLES.format(iteration=wildcards.iteration, condition=c.index)
        for c in CONDITIONS
    ]


def selection_history(wildcards):
    """Selection summaries of iterations 0 .. i (the uncertainty criterion's history)."""
    return [
        layout.SELECTION_SUMMARY.format(iteration=i)
        for i in range(int(wildcards.iteration) + 1)
    ]


def _redecision_changes(iteration):
    """What changed of the stop rules the iteration's decision was made under ([]: none)."""
    path = layout.current_decision(Path.cwd(), iteration)
    try:
        decision = json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return []
    if decision is None:
        return []
    return redecided(decision, iteration + 1 in ITERATIONS_BEGUN, config)


def stop_rule_changes(wildcards):
    """The changed stop rules a decision is made again under (none for a first decision)."""
    if "redecision" not in wildcards.keys():
        return []
    return _redecision_changes(int(wildcards.iteration))


def current_decision(iteration):
    """The decision of ``iteration`` as it stands, through its checkpoint: the first, or
    the last made again after the stop rules changed, or (changed again) a new one."""
    first = checkpoints.decide.get(iteration=iteration).output[0]
    number = layout.decision_number(Path.cwd(), iteration)
    if _redecision_changes(iteration):
        number += 1
    if number <= 1:
        return first
    return checkpoints.redecide.get(iteration=iteration, redecision=number).output[0]


def campaign_decisions(wildcards):
    """Decisions of all iterations run, following the checkpoints until one stops."""
    if SETTINGS.plan_all_iterations:
        return [layout.DECISION.format(iteration=i) for i in range(MAX_ITERATIONS)]
    decisions = []
    for i in range(MAX_ITERATIONS):
        path = current_decision(i)
        decisions.append(path)
        if json.loads(Path(path).read_text())["stop"]:
            break
    return decisions


# what a finished campaign has: every iteration's decision, its status and report
CAMPAIGN_TARGETS = [
    campaign_decisions,
    layout.STATUS,
    f"{layout.REPORT_DIR}/report.html",
]
