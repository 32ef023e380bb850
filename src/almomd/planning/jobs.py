"""The jobs of a campaign: which rule runs for which wildcards, and what it asks for.

The workflow's rules take their resources from :data:`RULE_RESOURCES`; the
budget planner (:mod:`almomd.planning.budget`) lists a campaign's jobs with
:func:`campaign_jobs` from the config alone, every iteration up to
``max_iterations``, and gives them the resources Snakemake would submit them
with (:mod:`almomd.planning.profiles`: a profile's ``set-resources`` over the
rule's own over the profile's ``default-resources``). That takes a fraction of a
second where Snakemake's dry run of a large campaign takes tens of seconds;
``almomd budget --snakemake`` plans from the dry run instead, and the tests
check that both agree.

A job is done when its output exists and nothing it is made from is still to
be made (:func:`remaining`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from almomd import layout, lineage

#: Rules that run in the controller process (``localrule: True`` or no run step).
LOCAL_RULES = frozenset(
    {
        "all",
        "campaign",
        "initial_datasets",
        "heldout_dataset",
        "subset",
        "fit_novelty",
        "select_frames",
        "merge_labels",
        "decide",
        "redecide",
        "write_status",
        "write_report",
    }  # fmt: skip
)

#: What each submitted rule asks for by itself: ``runtime`` (walltime estimate,
#: minutes), ``mem_mb``, ``tasks`` (MPI ranks); ``gpu`` marks the rules that get
#: one GPU when ``training.device`` is ``cuda``.
RULE_RESOURCES: dict[str, dict[str, Any]] = {
    "initial_candidates": {"runtime": 10, "mem_mb": 2000},
    "label_batch": {"runtime": 60, "mem_mb": 2000, "tasks": 1},
    "reference_md": {"runtime": 120, "mem_mb": 2000, "tasks": 1},
    "train_member": {"runtime": 60, "mem_mb": 4000, "gpu": True},
    "compile_member": {"runtime": 30, "mem_mb": 8000, "gpu": True},
    "explore": {"runtime": 60, "mem_mb": 4000, "gpu": True},
    "evaluate": {"runtime": 30, "mem_mb": 4000},
    "evaluate_heldout": {"runtime": 30, "mem_mb": 4000},
    "observables": {"runtime": 60, "mem_mb": 4000, "gpu": True},
    "harmonic_reference": {"runtime": 60, "mem_mb": 2000, "tasks": 1},
    "production_md": {"runtime": 120, "mem_mb": 4000, "gpu": True},
}
RULE_RESOURCES["label_initial_batch"] = RULE_RESOURCES["label_batch"]  # `use rule ... with`
RULE_RESOURCES["labeler_check"] = RULE_RESOURCES["label_batch"]  # one frame of the same code


def rule_resources(rule: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The resources ``rule`` asks for in a campaign with ``config`` (a GPU on ``cuda``)."""
    own = dict(RULE_RESOURCES.get(rule, {}))
    if own.pop("gpu", False):
        own["gpu"] = 1 if config["training"]["device"] == "cuda" else 0
    return own


class PlanError(RuntimeError):
    """The campaign cannot be planned; the message says why and what to fix."""


#: The training jobs of ``training.members_per_job`` > 1 are rules of this name
#: and the pack's index (``train_pack_0``, ...): their outputs are the pack's
#: member files, named in full.
PACK_RULE = "train_pack"
#: Likewise the exploration jobs of ``exploration.walkers_per_job`` > 1
#: (``explore_pack_0``, ...), whose outputs are the pack's walker files.
WALKER_PACK_RULE = "explore_pack"
#: The rule whose job a pack's job does several of, and the setting that packs them.
PACKED = {PACK_RULE: ("train_member", "training.members_per_job"),
          WALKER_PACK_RULE: ("explore", "exploration.walkers_per_job")}  # fmt: skip


def pack_rule(index: int) -> str:
    """The name of the rule that trains pack ``index`` of the members."""
    return f"{PACK_RULE}_{index}"


def walker_pack_rule(index: int) -> str:
    """The name of the rule that runs pack ``index`` of the walkers."""
    return f"{WALKER_PACK_RULE}_{index}"


def rule_family(rule: str) -> str:
    """``rule``, or ``train_pack`` / ``explore_pack`` for every rule of a pack."""
    return next((family for family in PACKED if rule.startswith(family + "_")), rule)


def pack_resources(
    config: Mapping[str, Any],
    size: int,
    given: Mapping[str, Any] | None = None,
    family: str = PACK_RULE,
) -> dict[str, Any]:
    """The resources of a job that does ``size`` jobs of one rule: ``size`` members
    trained one after the other (``train_pack``), or ``size`` walkers (``explore_pack``).

    The single job's rule's, with ``given`` over them (what a profile's
    ``set-resources`` gives that rule), and the runtime ``size`` times as long
    (an upper bound: walkers in one pass take less). A profile's
    ``set-resources`` of the pack's own rule still wins.
    """
    single = PACKED[family][0]
    return _scaled({**rule_resources(single, config), **(given or {})}, size, family)


def _scaled(resources: Mapping[str, Any], size: int, family: str = PACK_RULE) -> dict[str, Any]:
    """``resources`` of one job of the pack's rule, the runtime for ``size`` of them."""
    found = dict(resources)
    if "runtime" in found:
        single, setting = PACKED[family]
        try:
            found["runtime"] = round(float(found["runtime"]) * size)
        except (TypeError, ValueError) as exc:
            raise PlanError(
                f"{single}: runtime {found['runtime']!r} is not a number of minutes; "
                f"a job of {setting} gets that many times as long"
            ) from exc
    return found


@dataclass
class PlannedJob:
    """One job of the plan with the resources Snakemake would give it."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    output: str | None = None  # the file that shows the job is done
    needs: tuple[tuple, ...] = ()  # keys of the jobs it is made from
    also: tuple[str, ...] = ()  # further outputs (the members or walkers of a pack)
    members: int = 1  # the members a training job trains, or the walkers of a pack

    @property
    def family(self) -> str:
        """The rule, or ``train_pack`` / ``explore_pack`` for a pack's (:func:`rule_family`)."""
        return rule_family(self.rule)

    @property
    def key(self) -> tuple:
        return (self.rule, tuple(sorted(self.wildcards.items())))

    @property
    def local(self) -> bool:
        return self.rule in LOCAL_RULES

    @property
    def iteration(self) -> str:
        """The iteration the job belongs to (``initial`` for the initial and held-out data)."""
        if "iteration" in self.wildcards:
            return self.wildcards["iteration"]
        if "next_iteration" in self.wildcards:  # merging into i+1 is part of iteration i
            return str(int(self.wildcards["next_iteration"]) - 1)
        once = ("initial", "label_initial", "labeler_check", "reference_md", "heldout",
                "harmonic")  # fmt: skip
        return "initial" if self.rule.startswith(once) else "campaign"

    @property
    def partition(self) -> str:
        if self.local:
            return "local"
        return str(self.resources.get("slurm_partition", "default"))

    def _number(self, name: str, default: float) -> float:
        value = self.resources.get(name)
        if value is None or value == "<TBD>":
            return default
        try:
            return float(value)
        except ValueError as exc:
            raise PlanError(f"rule {self.rule}: resource {name}={value!r} is not a number") from exc

    @property
    def runtime_h(self) -> float:
        """The walltime limit (h): the profile's, or the rule's own estimate."""
        if self.local:
            return 0.0
        if "runtime" not in self.resources:
            raise PlanError(
                f"rule {self.rule} has no runtime resource: set runtime (minutes) for it "
                "in the profile's set-resources or default-resources"
            )
        return self._number("runtime", 0.0) / 60.0

    @property
    def gpu_hours(self) -> float:
        return self._number("gpu", 0.0) * self.runtime_h

    @property
    def cpu_hours(self) -> float:
        cpus = max(self.threads, self._number("cpus_per_task", 1.0))
        return self._number("tasks", 1.0) * cpus * self.runtime_h


def key(rule: str, **wildcards: object) -> tuple:
    """The key of the job of ``rule`` with ``wildcards`` (see :attr:`PlannedJob.key`)."""
    return (rule, tuple(sorted((k, str(v)) for k, v in wildcards.items())))


def campaign_jobs(config: Mapping[str, Any]) -> list[PlannedJob]:
    """Every job of the campaign up to ``max_iterations``, in an order that runs.

    The same jobs as Snakemake's dry run with ``plan_all_iterations: true``:
    the initial data (generated or read), the held-out truth (reference MD per
    condition), per iteration the ensemble, its evaluations, the walkers, the
    selection, the decision and (but in the last iteration) the labels and the
    next training set, and the campaign's status and report. Resources are the
    rules' own (:func:`rule_resources`).
    """
    from almomd.settings.campaign import conditions, member_packs, walker_packs, walkers

    jobs: list[PlannedJob] = []

    def add(rule: str, output: str, needs: Iterable[tuple] = (), **wildcards: object) -> tuple:
        values = {k: str(v) for k, v in wildcards.items()}
        jobs.append(PlannedJob(rule, values, rule_resources(rule, config), 1, output, tuple(needs)))
        return jobs[-1].key

    from almomd.ensemble.uncertainty import ERROR_MODEL_METRICS
    from almomd.settings.sections import Exploration, section

    error_model = config["uncertainty"]["metric"] in ERROR_MODEL_METRICS
    continues = section(Exploration, config["exploration"]).continues
    packs = member_packs(config) if config["training"]["members_per_job"] > 1 else []
    walker_groups = walker_packs(config) if config["exploration"]["walkers_per_job"] > 1 else []

    batches = range(config["labeler"]["n_batches"])
    check = add("labeler_check", layout.LABELER_CHECK)
    labels: list[tuple] = []
    if config["initial_data"]["file"] is None:
        candidates = add("initial_candidates", layout.INITIAL_CANDIDATES)
        labels = [
            add("label_initial_batch", layout.INITIAL_LABELED.format(batch=b),
                [candidates, check], batch=b)
            for b in batches
        ]  # fmt: skip
    data = add("initial_datasets", layout.TEST_SET, [*labels, check])
    source = config["heldout"]["source"]
    heldout: list[tuple] = []
    if source == "reference_md":
        heldout = [
            add(
                "reference_md",
                layout.REFERENCE_MD.format(condition=c.index),
                [check],
                condition=c.index,
            )
            for c in conditions(config)
        ]
    dynamics = dict(zip([c.index for c in conditions(config)], heldout, strict=False))
    if source in ("reference_md", "file"):
        heldout = [add("heldout_dataset", layout.HELDOUT_SET, heldout)]
    observed = config["observables"]["enabled"]
    harmonic = {
        name: add("harmonic_reference", layout.HARMONIC.format(system=name), [check], system=name)
        for name in (dict.fromkeys(c.system for c in conditions(config)) if observed else ())
    }
    train, selections, decisions, earlier_labels, walked = data, [], [], [], []
    last = config["max_iterations"] - 1
    for i in range(last + 1):
        at = {"iteration": i}
        subsets = [
            add("subset", layout.SUBSET.format(subset=k, **at), [train], subset=k, **at)
            for k in range(config["ensemble"]["n_subsets"])
        ]
        trained = {}  # (subset, seed) -> the key of the job that trains it
        for index, pack in enumerate(packs):
            files = [layout.member_file(i, k, m) for k, m in pack]
            needs = sorted({subsets[k] for k, _ in pack})
            key = add(pack_rule(index), files[0], needs, **at)
            jobs[-1].also, jobs[-1].members = tuple(files[1:]), len(pack)
            jobs[-1].resources = pack_resources(config, len(pack))
            trained |= dict.fromkeys(pack, key)
        ensemble, packaged = [], []
        for k, subset in enumerate(subsets):
            for m in range(config["ensemble"]["n_seeds"]):
                member = trained.get((k, m)) or add(
                    "train_member", layout.member_file(i, k, m), [subset], subset=k, seed=m, **at
                )
                packaged.append(member)
                if config["training"]["compile"]:
                    member = add("compile_member", layout.member_file(i, k, m, True), [member],
                                 subset=k, seed=m, **at)  # fmt: skip
                ensemble.append(member)
        fitted_on = [data, *heldout, *earlier_labels] if error_model else []  # its error model
        novelty = add("fit_novelty", layout.NOVELTY.format(**at),
                      [*dict.fromkeys(packaged), train, *fitted_on], **at)  # fmt: skip
        before = walked if i > 0 and continues(i) else []  # where the walkers go on from
        walked = []
        for index, pack in enumerate(walker_groups):
            files = [layout.WALKER.format(walker=w, **at) for w in pack]
            walked.append(add(walker_pack_rule(index), files[0], [*ensemble, novelty, *before],
                              **at))  # fmt: skip
            jobs[-1].also, jobs[-1].members = tuple(files[1:]), len(pack)
            jobs[-1].resources = pack_resources(config, len(pack), family=WALKER_PACK_RULE)
        walked += [
            add("explore", layout.WALKER.format(walker=w.index, **at),
                [*ensemble, novelty, *before], walker=w.index, **at)
            for w in walkers(config) if not walker_groups
        ]  # fmt: skip
        evaluated = add("evaluate", layout.TEST_METRICS.format(**at),
                        [*ensemble, novelty, data], **at)  # fmt: skip
        judged = add("evaluate_heldout", layout.HELDOUT_SUMMARY.format(**at),
                     [*ensemble, novelty, data, *heldout, *earlier_labels], **at)  # fmt: skip
        selected = add("select_frames", layout.SELECTION_SUMMARY.format(**at),
                       [*walked, evaluated, judged], **at)  # fmt: skip
        selections.append(selected)
        measured = [
            add("observables", layout.OBSERVABLES.format(condition=c.index, **at),
                [*ensemble, harmonic[c.system], *([dynamics[c.index]] if c.index in dynamics
                                                  else [])], condition=c.index, **at)
            for c in conditions(config) if observed
        ]  # fmt: skip
        decisions.append(add("decide", layout.DECISION.format(**at),
                             [evaluated, judged, *selections, *measured], **at))  # fmt: skip
        if i < last:
            labeled = [
                add("label_batch", layout.LABELED.format(batch=b, **at), [selected, check],
                    batch=b, **at)
                for b in batches
            ]  # fmt: skip
            if source == "audit":
                earlier_labels += labeled
            train = add("merge_labels", layout.TRAIN.format(iteration=i + 1),
                        [train, selected, *labeled], next_iteration=i + 1)  # fmt: skip
    status = add("write_status", layout.STATUS, decisions)
    report = add("write_report", f"{layout.REPORT_DIR}/report.html", [status, *decisions])
    add("all", "", [status, report])
    return jobs


def remaining(jobs: Iterable[PlannedJob], root: Path | str) -> list[PlannedJob]:
    """The jobs still to run: output missing, or made from a job still to run. ``all`` runs
    whenever anything else does; jobs come in an order that runs (:func:`campaign_jobs`'s).
    """
    todo: set[tuple] = set()
    left = []
    for job in jobs:
        if job.rule == "labeler_check" and not lineage.labeler_checked(root):
            continue  # a campaign of an earlier version labels on without it
        missing = not job.output or not all(
            Path(root, out).exists() for out in (job.output, *job.also)
        )
        if missing or any(need in todo for need in job.needs):
            if job.rule == "all" and not todo:
                continue
            todo.add(job.key)
            left.append(job)
    return left
