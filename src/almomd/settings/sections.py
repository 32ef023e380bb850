"""The validated configuration as typed settings: one frozen dataclass per config section.

:func:`almomd.settings.schema.validate_config` checks a configuration and fills
in its defaults once; :meth:`Settings.from_config` turns the result into these
objects, which is what a workflow step is given. Each dataclass has exactly the
keys of its section in ``workflow/schemas/config.schema.yaml`` (a unit test
compares them), so a key added to the schema without its field fails the tests.

A rule hands its step only the sections it names (``settings(...)`` in
``workflow/rules/common.smk``, so a change elsewhere does not rerun it); a step
that reads a section its rule did not name gets :class:`MissingSection`, which
says where to add it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from almomd.labeling.labelers import LabelerSettings
from almomd.settings import campaign, files, systems


@dataclass(frozen=True)
class InitialData:
    """``initial_data``: the user's labeled file, or how the first frames are generated."""

    file: str | None = None
    n_frames: int = 24
    rattle_stdev: float = 0.05
    strain: float = 0.02
    md_fraction: float = 0.5
    md_calculator: str = "emt"
    md_temperature: float | None = 300.0
    md_steps_between: int = 10
    md_pool: int = 1


@dataclass(frozen=True)
class TestSet:
    """``test_set``: the fixed test set (the user's file or split off the initial frames)."""

    file: str | None = None
    size: int = 6


@dataclass(frozen=True)
class Heldout:
    """``heldout``: where the held-out truth comes from and how much of it."""

    source: str = "audit"
    file: str | None = None
    frames_per_condition: int = 8
    trajectories_per_condition: int = 2
    equilibration_steps: int = 40
    steps_between: int = 40
    audit_per_walker: int = 2


@dataclass(frozen=True)
class Ensemble:
    """``ensemble``: K subsets times M seeds, and the members' architectures."""

    n_subsets: int = 2
    n_seeds: int = 2
    subset_fraction: float = 0.8
    architectures: tuple[str, ...] = ("nequip",)


@dataclass(frozen=True)
class Model:
    """``model``: the members' hyperparameters (or the user's own template)."""

    template: str | None = None
    r_max: float = 4.0
    l_max: int = 1
    num_layers: int = 2
    num_features: int = 16
    radial_mlp_depth: int = 1
    radial_mlp_width: int = 16
    parity: bool = True
    model_dtype: str = "float32"
    reference_energies: dict[str, float] | None = None


@dataclass(frozen=True)
class Training:
    """``training``: epochs, weights, warm starts, jobs and the device."""

    warm_start: bool = False
    start_from: str | None = None
    start_perturbation: float = 0.2
    warm_start_epochs: int | None = None
    warm_start_learning_rate: float | None = None
    max_epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 0.02
    val_fraction: float = 0.1
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 0.0
    patience: int = 20
    members_per_job: int = 1
    device: str = "cpu"
    compile: bool = False


@dataclass(frozen=True)
class Exploration:
    """``exploration``: the walkers' MD (a system may override some keys for its own)."""

    thermostat: str = "nvt_langevin"
    temperatures: tuple[float, ...] = (300.0,)
    replicas: int = 1
    pressure: float = 0.0
    timestep: float = 2.0
    friction: float = 0.02
    barostat_time: float = 500.0
    steps: int = 200
    log_interval: int = 10
    max_uncertainty: float | None = None
    temperature_end: float | None = None
    bias: dict[str, Any] | None = None
    restarts: int = 0
    min_distance: float = 1.0
    walkers_per_job: int = 1
    torch_compile: bool | str = "auto"
    continue_walkers: bool = True
    fresh_start_every: int = 0

    def continues(self, iteration: int) -> bool:
        """Whether iteration ``iteration``'s walkers go on from the previous iteration's."""
        if not self.continue_walkers or iteration == 0:
            return False
        return not (self.fresh_start_every and iteration % self.fresh_start_every == 0)


@dataclass(frozen=True)
class Uncertainty:
    """``uncertainty``: the ensemble disagreement that selection and MD watch."""

    metric: str = "force_error_max"
    kind: str = "absolute"

    @property
    def column(self) -> str:
        """The frames' column of this uncertainty, e.g. ``u_force_max``."""
        return "u_" + (self.metric if self.kind == "absolute" else f"{self.metric}_rel")


@dataclass(frozen=True)
class Selection:
    """``selection``: which explored frames are labeled (ALmoMD's soft acceptance)."""

    method: str = "active"
    shift: float = 2.0
    gradient: float = 1.0
    calibration: str = "heldout"
    acceptance: str = "erf"
    calibrated_probability: float = 0.5
    calibration_frames: int = 5
    window_low: float | None = None
    window_high: float | None = None
    max_frames: int = 8
    min_distance: float = 1.0
    min_frame_distance: float = 0.1
    min_time_separation: float = 100.0
    fair_share: bool = True
    max_energy_above_mean: float | None = None
    fill: bool = False
    diversity: str = "time"


@dataclass(frozen=True)
class Convergence:
    """``convergence``: the targets on the held-out truth and how long they must hold."""

    force_rmse: float | None = None
    energy_rmse: float | None = None
    min_selected: int = 0
    uncertain_fraction: float | None = 0.1
    stable_iterations: int = 3
    observables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observables:
    """``observables``: MLIP MD's observables per condition and iteration, and stability."""

    enabled: bool = True
    steps: int = 1000
    equilibration_steps: int | None = None
    blocks: int = 4
    max_force: float = 20.0
    max_uncertainty: float = 1.0
    nve_steps: int = 500
    max_drift: float = 1.0
    reference: tuple[str, ...] | None = None
    reference_timestep: float | None = None

    def equilibration(self, heldout: Heldout) -> int:
        """MD steps before recording: its own, else the reference dynamics' own."""
        own = self.equilibration_steps
        return heldout.equilibration_steps if own is None else own


@dataclass(frozen=True)
class Production:
    """``production``: MD with a trained ensemble outside the loop."""

    structure: str | None = None
    system: str | None = None
    iteration: int | None = None
    thermostat: str = "nvt_langevin"
    temperature: float = 300.0
    pressure: float = 0.0
    steps: int = 1000
    log_interval: int = 10
    threshold_sigmas: float = 3.0
    stop_above_threshold: bool = False


#: Each section's dataclass, by config key.
SECTIONS: dict[str, type] = {
    "initial_data": InitialData,
    "test_set": TestSet,
    "heldout": Heldout,
    "ensemble": Ensemble,
    "model": Model,
    "training": Training,
    "exploration": Exploration,
    "uncertainty": Uncertainty,
    "selection": Selection,
    "labeler": LabelerSettings,
    "convergence": Convergence,
    "observables": Observables,
    "production": Production,
}

#: The top-level keys that are plain values.
SCALARS = ("seed", "max_iterations", "plan_all_iterations")


class MissingSection(LookupError):
    """A step read a config section its rule did not hand it."""


def section(cls: type, values: Any, **given: Any) -> Any:
    """Build the dataclass ``cls`` from ``values``, a mapping or a dataclass (plus ``given``).

    Keys of ``values`` that ``cls`` has no field for are left out, so one
    section (or a mix of sections) builds a smaller settings object such as
    :class:`almomd.exploration.md.MDSettings`; lists become tuples where the
    field is a tuple.
    """
    if not isinstance(values, Mapping):  # another settings object
        values = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    chosen = {name: values[name] for name in fields.keys() - given.keys() if name in values}
    for name, value in chosen.items():
        if isinstance(value, list) and str(fields[name].type).startswith("tuple"):
            chosen[name] = tuple(value)
    return cls(**chosen, **given)


@dataclass(frozen=True, eq=False)
class Settings:
    """The validated configuration (or the sections a rule hands its step), typed.

    Sections are attributes (``settings.training.device``); the systems, walkers,
    conditions and members derived from them are methods. ``config`` is the
    validated mapping the settings were made from.
    """

    config: Mapping[str, Any]
    _built: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Typed settings of a validated configuration (or of some of its sections)."""
        built = {name: section(SECTIONS[name], config[name]) for name in SECTIONS if name in config}
        built |= {name: config[name] for name in SCALARS if name in config}
        if "systems" in config:
            built["systems"] = tuple(config["systems"])
        return cls(config, built)

    def __getattr__(self, name: str) -> Any:
        built = self.__dict__.get("_built", {})
        if name in built:
            return built[name]
        if name in SECTIONS or name in SCALARS or name == "systems":
            raise MissingSection(
                f"this step was not given the config key {name!r}: name it in its rule's "
                "params settings(...) in workflow/rules/"
            )
        raise AttributeError(name)

    # what the sections make of the campaign (see almomd.settings.campaign and .systems)
    def system_names(self) -> list[str]:
        """The systems' names, in the configured order."""
        return systems.names(self._needs("systems"))

    def exploration_of(self, system: str) -> Exploration:
        """The exploration settings of ``system``: the campaign's with its own on top."""
        return section(
            Exploration, systems.exploration(self._needs("systems", "exploration"), system)
        )

    def structure(self, system: str):
        """The starting structure of ``system`` (see :func:`almomd.settings.systems.structure`)."""
        return systems.structure(self._needs("systems"), system)

    def structures(self, base_dir: Path | str = ".") -> dict[str, Any]:
        """The starting structure of every system, by name."""
        return files.structures(self._needs("systems"), base_dir)

    def walkers(self) -> list[campaign.Walker]:
        """The exploration walkers (per system: temperatures times replicas)."""
        return campaign.walkers(self._needs("systems", "exploration"))

    def conditions(self) -> list[campaign.Condition]:
        """The distinct exploration conditions per system."""
        return campaign.conditions(self._needs("systems", "exploration"))

    def members(self) -> list[tuple[int, int]]:
        """The ensemble members as (subset, seed) pairs."""
        return campaign.members(self._needs("ensemble"))

    def member_architecture(self, seed_index: int) -> str:
        """The architecture of the members with seed ``seed_index``."""
        return campaign.member_architecture(self._needs("ensemble"), seed_index)

    def initial_md_package(self) -> str | None:
        """The NequIP package the initial MD runs with (``initial_data.md_calculator`` a
        ``.nequip.zip`` path, or ``start_from`` for ``training.start_from``'s), else None."""
        name = self.initial_data.md_calculator
        if name == "start_from":
            return self.training.start_from
        return name if name.endswith(".nequip.zip") else None

    def job_device(self) -> str:
        """This job's torch device (``training.device``, ``auto`` resolved)."""
        return campaign.job_device(self._needs("training"))

    def _needs(self, *names: str) -> Mapping[str, Any]:
        for name in names:
            if name not in self.config:
                getattr(self, name)  # raises MissingSection
        return self.config
