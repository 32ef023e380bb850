"""Expected cost of a campaign's jobs: a cost model fitted to what the campaign measured.

A job's time grows with its work units:

============================  =============================================
rule                          units
============================  =============================================
``train_member``              training frames of the member x epochs
``train_pack_P``              the sum over the pack's members (one process)
``explore``                   MD steps x atoms x members
``explore_pack_P``            the sum over the pack's walkers (one pass)
``label_batch``               frames x atoms (single points of the labeler)
``label_initial_batch``       frames x atoms
``labeler_check``             atoms (one single point)
``evaluate``                  test frames x atoms x members
``evaluate_heldout``          held-out frames x atoms x members
``reference_md``              MD steps x atoms (every step is a single point)
``compile_member``            1
``observables``               (MD steps x members + NVE steps) x atoms x members
                              (one trajectory per member, every member on each)
``harmonic_reference``        atoms x structures labeled (phonopy's displacements and
                              the ideal structure)
``initial_candidates``        MD steps x atoms of the initial MD, where a package runs it
============================  =============================================

A pretrained model is larger than the demo's members: where the campaign starts from
a package (``training.start_from``), the units of every job that runs its members
(training, exploration, evaluation, observables) and of an initial MD run by a
package are multiplied by the package's size over a demo member's
(:data:`DEMO_MEMBER_BYTES`, the tensors each stores): a first-order model (a NequIP
layer's work and its weights both grow with the square of its features), so that the
first guesses scale; fits to the campaign's own jobs see the same factor in every
sample and are not changed by it.

Per rule, ``seconds = startup + per_unit * units`` is fitted by least squares
to the campaign's finished jobs (their Snakemake benchmark files and the files
they made); where the samples cannot separate startup and cost per unit (a
single unit count measured, as when the first iteration's members all train
on as many frames), the first guess's split is kept and scaled to the
measured time.
Before a rule has run, :data:`FIRST_GUESS` applies: costs measured with the
demo's settings (CuI, 32 atoms, GFN1-xTB, tiny NequIP members, one CPU core per
job), marked as a guess wherever it is used. Linear in atoms is a first-order model: a DFT
code's single point grows faster with the number of atoms, so a guess or a
fit from smaller cells underestimates larger ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almomd import layout

#: (startup s, s per unit) per rule: the demo's settings (CuI, 32 atoms,
#: GFN1-xTB, tiny members, one core per job) measured alone on a 2-core machine:
#: training from ``benchmarks/train_iteration.py`` (about 10 s of imports per
#: job, 0.035 s per frame-epoch), the rest fitted to ``make demo``'s jobs.
#: Evaluations were measured at two unit counts that took the same time (model
#: loading dominates): no cost per unit resolved. compile_member was not
#: measured (a round guess). A loaded machine takes up to 2-3x longer.
FIRST_GUESS: dict[str, tuple[float, float]] = {
    "train_member": (10.0, 0.035),
    "explore": (0.0, 5.7e-4),
    "label_batch": (3.1, 0.063),
    "label_initial_batch": (3.1, 0.063),
    "labeler_check": (3.1, 0.063),
    "evaluate": (14.2, 0.0),
    "evaluate_heldout": (14.2, 0.0),
    "reference_md": (0.0, 0.051),
    "compile_member": (60.0, 0.0),
    # 4 member trajectories of 221 steps of CuI (32 atoms), 4 members: 10 s after start-up
    "observables": (15.0, 1.0e-4),
    "harmonic_reference": (3.1, 0.063),
    # an initial MD with a package: the imports, then a walker's cost per step and atom
    "initial_candidates": (10.0, 5.7e-4),
}

#: Bytes of tensors a member with the demo's model settings stores (CuI, 2 types; the
#: sum of its package's ``.data/*.storage`` files): the size the first guesses are for.
DEMO_MEMBER_BYTES = 87_723
FIRST_GUESS["train_pack"] = FIRST_GUESS["train_member"]  # a pack's job: the same model
# walkers in one pass cost less per unit than alone; until a pack has run, alone's (an
# upper bound), then its own fit (not pooled with explore)
FIRST_GUESS["explore_pack"] = FIRST_GUESS["explore"]


@dataclass(frozen=True)
class Cost:
    """``seconds = startup + per_unit * units`` of one rule, and where it comes from."""

    startup: float
    per_unit: float
    n_measured: int  # 0: the first guess

    def seconds(self, units: float) -> float:
        return self.startup + self.per_unit * units

    @property
    def source(self) -> str:
        return f"fitted to {self.n_measured} jobs" if self.n_measured else "first guess"


def fit(samples: Iterable[tuple[float, float]], shape: tuple[float, float] | None = None) -> Cost:
    """Least-squares ``startup + per_unit * units`` through (units, seconds) samples.

    Both coefficients are kept non-negative. Where the samples cannot separate
    the two (one distinct unit count, or a fit with a negative startup), the
    ``shape`` (a first guess's startup and cost per unit) is scaled to pass
    through the mean, or without one the line goes through the origin and the
    mean.
    """
    samples = list(samples)
    n = len(samples)
    units = [u for u, _ in samples]
    seconds = [s for _, s in samples]
    mean_u, mean_s = sum(units) / n, sum(seconds) / n
    spread = sum((u - mean_u) ** 2 for u in units)
    if spread > 0:
        slope = sum((u - mean_u) * (s - mean_s) for u, s in samples) / spread
        startup = mean_s - slope * mean_u
        if slope >= 0 and startup >= 0:
            return Cost(startup, slope, n)
        if slope < 0:  # time does not grow with the units here: a constant
            return Cost(mean_s, 0.0, n)
    if shape and shape[0] + shape[1] * mean_u > 0:
        scale = mean_s / (shape[0] + shape[1] * mean_u)
        return Cost(shape[0] * scale, shape[1] * scale, n)
    return Cost(0.0, mean_s / mean_u if mean_u else 0.0, n) if mean_u else Cost(mean_s, 0.0, n)


#: Rules that run the same code on different data share one cost model.
SAME_COST = {
    "label_initial_batch": "label_batch",
    "labeler_check": "label_batch",
    "evaluate_heldout": "evaluate",
    "harmonic_reference": "label_batch",
    "train_pack": "train_member",  # a member's job is a pack of one: start-up once per job
}


def fit_all(measured: Mapping[str, list[tuple[float, float]]]) -> dict[str, Cost]:
    """The cost of every rule: fitted where measured (pooled as :data:`SAME_COST` says),
    else the first guess."""
    pooled: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for rule, samples in measured.items():
        pooled[SAME_COST.get(rule, rule)] += samples
    costs = {rule: Cost(*guess, 0) for rule, guess in FIRST_GUESS.items()}
    for rule in costs:
        samples = pooled.get(SAME_COST.get(rule, rule))
        if samples:
            costs[rule] = fit(samples, FIRST_GUESS[rule])
    return costs


#: Rules whose work is the members' (scaled by :attr:`Campaign.model_size`).
MEMBER_WORK = ("train_member", "train_pack", "explore", "explore_pack", "evaluate",
               "evaluate_heldout", "observables")  # fmt: skip


@dataclass
class Campaign:
    """What the units of a campaign's jobs depend on (from its config and its files)."""

    members: int
    packs: list[list[tuple[int, int]]]  # the members of each train_pack_P job
    walker_packs: list[list[int]]  # the walkers of each explore_pack_P job
    epochs: int
    warm_epochs: int
    subset_fraction: float
    steps: dict[int, int]  # per walker
    walker_atoms: dict[int, int]
    atoms: float  # mean over the systems
    n_train: dict[int, int]  # measured training-set sizes per iteration
    growth: float  # training frames added per iteration (measured mean, else max_frames)
    labels_per_iteration: float  # selected plus audit frames sent to labeling
    n_batches: int
    n_initial: int
    n_test: int
    n_heldout: int
    reference_steps: int
    condition_atoms: dict[int, int]
    observable_steps: int = 0  # per member trajectory: equilibration and recorded
    nve_steps: int = 0  # NVE of the ensemble mean, one structure
    harmonic_structures: dict[str, int] | None = None  # labeled for each system's sigma^A
    model_size: float = 1.0  # the members' size over a demo member's (start_from's package)
    initial_md_units: float = 0.0  # MD steps x atoms x size of an initial MD with a package

    def train_size(self, iteration: int) -> float:
        if iteration in self.n_train:
            return self.n_train[iteration]
        known = max((i for i in self.n_train if i < iteration), default=None)
        start = self.n_train[known] if known is not None else self.n_initial - self.n_test
        return start + self.growth * (iteration - (known if known is not None else 0))

    def units(self, rule: str, wildcards: Mapping[str, str]) -> float:
        """The work units of a planned job of ``rule`` (see the module docstring)."""
        return self.sized(rule, self.raw_units(rule, wildcards))

    def sized(self, rule: str, units: float) -> float:
        """``units`` of ``rule`` (or its family) times the members' size where they run."""
        family = next((f for f in MEMBER_WORK if rule == f or rule.startswith(f + "_")), None)
        return units * self.model_size if family else units

    def raw_units(self, rule: str, wildcards: Mapping[str, str]) -> float:
        """The units of a job of ``rule`` before the members' size (:meth:`sized`)."""
        if rule == "initial_candidates":
            return self.initial_md_units
        if rule == "train_member" or rule.startswith("train_pack_"):
            iteration = int(wildcards["iteration"])
            epochs = self.warm_epochs if iteration > 0 else self.epochs
            members = len(self.packs[int(rule.rsplit("_", 1)[1])]) if rule != "train_member" else 1
            return members * max(2.0, self.subset_fraction * self.train_size(iteration)) * epochs
        if rule == "explore" or rule.startswith("explore_pack_"):
            pack = (
                [int(wildcards["walker"])]
                if rule == "explore"
                else self.walker_packs[int(rule.rsplit("_", 1)[1])]
            )
            return sum(self.steps[w] * self.walker_atoms[w] for w in pack) * self.members
        if rule == "label_batch":
            return math.ceil(self.labels_per_iteration / self.n_batches) * self.atoms
        if rule == "label_initial_batch":
            return math.ceil(self.n_initial / self.n_batches) * self.atoms
        if rule == "labeler_check":  # one frame
            return self.atoms
        if rule == "evaluate":
            return self.n_test * self.atoms * self.members
        if rule == "evaluate_heldout":
            return self.n_heldout * self.atoms * self.members
        if rule == "reference_md":
            return self.reference_steps * self.condition_atoms[int(wildcards["condition"])]
        if rule == "observables":
            atoms = self.condition_atoms[int(wildcards["condition"])]
            members = self.members
            return (self.observable_steps * members + self.nve_steps) * atoms * members
        if rule == "harmonic_reference":
            return self.harmonic_units(wildcards["system"])
        return 1.0

    def harmonic_units(self, system: str) -> float:
        return self.atoms * (self.harmonic_structures or {}).get(system, 2)


def campaign(config: dict[str, Any], root: Path | str = ".", upto: int | None = None) -> Campaign:
    """The :class:`Campaign` of the validated ``config`` in directory ``root``.

    ``upto``: use the training sets of iterations up to it only (what was known
    when iteration ``upto`` started).
    """
    from almomd.data.frames import read_frames
    from almomd.settings.campaign import (
        conditions,
        member_packs,
        members,
        reference_md_steps,
        walker_packs,
        walkers,
    )
    from almomd.settings.files import structures

    built = structures(config, root)
    atoms = {name: len(a) for name, a in built.items()}
    training, held = config["training"], config["heldout"]
    started = training["warm_start_epochs"] or training["max_epochs"]  # from a trained model
    n_train = {}
    for i in layout.iterations(root):
        if upto is not None and i > upto:
            continue
        path = layout.path(layout.TRAIN, root, iteration=i)
        if path.is_file():
            n_train[i] = len(read_frames(path))
    sizes = [n_train[i] for i in sorted(n_train)]
    added = [b - a for a, b in zip(sizes, sizes[1:], strict=False)]
    growth = sum(added) / len(added) if added else float(config["selection"]["max_frames"])
    found = walkers(config)
    audit = held["audit_per_walker"] * len(found) if held["source"] == "audit" else 0
    n_systems = len(atoms)
    n_heldout = {
        "reference_md": held["frames_per_condition"] * len(conditions(config)),
        "audit": audit,
        "file": _count(layout.path(layout.HELDOUT_SET, root)),
    }.get(held["source"]) or config["test_set"]["size"] * n_systems
    return Campaign(
        members=len(members(config)),
        packs=member_packs(config),
        walker_packs=walker_packs(config),
        epochs=started if training.get("start_from") else training["max_epochs"],
        warm_epochs=started
        if training["warm_start"] or training.get("start_from")
        else training["max_epochs"],
        subset_fraction=config["ensemble"]["subset_fraction"],
        steps={w.index: _steps(config, w.system) for w in found},
        walker_atoms={w.index: atoms[w.system] for w in found},
        atoms=sum(atoms.values()) / n_systems,
        n_train=n_train,
        growth=growth,
        labels_per_iteration=growth + audit,
        n_batches=config["labeler"]["n_batches"],
        n_initial=config["initial_data"]["n_frames"] * n_systems,
        n_test=config["test_set"]["size"] * n_systems,
        n_heldout=n_heldout,
        reference_steps=reference_md_steps(held),
        condition_atoms={c.index: atoms[c.system] for c in conditions(config)},
        observable_steps=_observable_steps(config),
        nve_steps=config["observables"]["nve_steps"],
        harmonic_structures=_harmonic_structures(config, built),
        model_size=_model_size(config, root),
        initial_md_units=_initial_md_units(config, root, atoms),
    )


def _package(config: dict[str, Any], root: Path | str, name: str | None):
    from almomd.settings.packages import read_package

    return read_package(Path(root) / name) if name else None


def _model_size(config: dict[str, Any], root: Path | str) -> float:
    """The start_from package's size over a demo member's (1: from scratch)."""
    package = _package(config, root, config["training"].get("start_from"))
    return package.parameter_bytes / DEMO_MEMBER_BYTES if package else 1.0


def _initial_md_units(config: dict[str, Any], root: Path | str, atoms: dict[str, int]) -> float:
    """MD steps x atoms x size of the initial MD where a package runs it (0: none)."""
    from almomd.settings.sections import Settings

    initial = config["initial_data"]
    n_md = round(initial["md_fraction"] * initial["n_frames"])
    package = _package(config, root, Settings.from_config(config).initial_md_package())
    if initial["file"] is not None or not n_md or package is None:
        return 0.0
    steps = n_md * initial["md_pool"] * initial["md_steps_between"]
    return steps * sum(atoms.values()) * package.parameter_bytes / DEMO_MEMBER_BYTES


def _harmonic_structures(config: dict[str, Any], built: dict[str, Any]) -> dict[str, int]:
    if not config["observables"]["enabled"]:
        return {}
    from almomd.observables.anharmonicity import displaced_count

    return {name: displaced_count(atoms) for name, atoms in built.items()}


def _observable_steps(config: dict[str, Any]) -> int:
    from almomd.settings.sections import Heldout, Observables, section

    chosen = section(Observables, config["observables"])
    return chosen.equilibration(section(Heldout, config["heldout"])) + chosen.steps


def _count(path: Path) -> int:
    from almomd.data.frames import read_frames

    return len(read_frames(path)) if path.is_file() else 0


def _steps(config: dict[str, Any], system: str) -> int:
    from almomd.settings import systems

    return systems.exploration(config, system)["steps"]
