"""What the settings make of a campaign: walkers, conditions, members, training packs, devices."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almomd.errors import ConfigError
from almomd.settings import systems


@dataclass(frozen=True)
class Walker:
    """One exploration walker: a system, a temperature and a replica number."""

    index: int
    temperature: float
    replica: int
    system: str


@dataclass(frozen=True)
class Condition:
    """One exploration condition: what a reference MD has to sample."""

    index: int
    temperature: float
    pressure: float | None
    system: str
    #: the system's name is part of the label when the campaign has several
    named: bool = False

    @property
    def label(self) -> str:
        """Short name used in tables (``600 K``, ``600 K, 1 GPa``, ``vacancy 600 K``)."""
        text = f"{self.temperature:g} K"
        text = text if self.pressure is None else f"{text}, {self.pressure:g} GPa"
        return f"{self.system} {text}" if self.named else text


def conditions(config: dict[str, Any]) -> list[Condition]:
    """The distinct exploration conditions per system (replicas of a temperature share one).

    A temperature ramp's end (``exploration.temperature_end``) is a condition too.
    """
    exploration = config["exploration"]
    pressure = exploration["pressure"] if exploration["thermostat"] == "npt" else None
    named = len(config["systems"]) > 1
    found: list[Condition] = []
    for name in systems.names(config):
        for temperature in condition_temperatures(systems.exploration(config, name)):
            found.append(Condition(len(found), temperature, pressure, name, named))
    return found


def condition_temperatures(exploration: dict[str, Any]) -> list[float]:
    """The distinct temperatures explored (K): the walkers' and a ramp's end."""
    temperatures = {float(t) for t in exploration["temperatures"]}
    if exploration.get("temperature_end") is not None:
        temperatures.add(float(exploration["temperature_end"]))
    return sorted(temperatures)


def reference_md_steps(heldout: dict[str, Any]) -> int:
    """Labeled MD steps of one condition's reference MD, as planned.

    Each trajectory equilibrates, then its frames are ``steps_between`` apart;
    a trajectory whose measured autocorrelation time asks for more runs longer
    (up to 4x, :mod:`almomd.evaluation.reference_md`).
    """
    trajectories = heldout["trajectories_per_condition"]
    frames = heldout["frames_per_condition"]
    return trajectories * heldout["equilibration_steps"] + heldout["steps_between"] * (
        frames - trajectories
    )


def walkers(config: dict[str, Any]) -> list[Walker]:
    """Return the exploration walkers: per system, every temperature times every replica."""
    found = []
    for name in systems.names(config):
        exploration = systems.exploration(config, name)
        pairs = itertools.product(exploration["temperatures"], range(exploration["replicas"]))
        found += [Walker(len(found) + i, float(t), r, name) for i, (t, r) in enumerate(pairs)]
    return found


def member_architecture(config: dict[str, Any], seed_index: int) -> str:
    """The architecture of the members with seed ``seed_index``: the list taken in turn."""
    architectures = config["ensemble"]["architectures"]
    return architectures[seed_index % len(architectures)]


def members(config: dict[str, Any]) -> list[tuple[int, int]]:
    """Return the ensemble members as (subset, seed) index pairs."""
    ensemble = config["ensemble"]
    return [(k, m) for k in range(ensemble["n_subsets"]) for m in range(ensemble["n_seeds"])]


def job_device(config: dict[str, Any]) -> str:
    """The torch device of this job: ``training.device``, ``auto`` resolved here.

    ``auto`` is ``cuda`` where the job sees a GPU (the profile gave it one) and
    ``cpu`` elsewhere. Raises :class:`ConfigError` for ``cuda`` without one.
    """
    wanted = config["training"]["device"]
    if wanted == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if wanted == "auto":
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "not set")
    raise ConfigError(
        "training.device is cuda, but this job sees no GPU (torch.cuda.is_available() is "
        f"False; CUDA_VISIBLE_DEVICES={visible}): give the rule a GPU in the profile "
        "(set-resources: gpu: 1 and a GPU partition), or set training.device: auto to run "
        "where there is none on the CPU"
    )


def member_packs(config: dict[str, Any]) -> list[list[tuple[int, int]]]:
    """The ensemble members of each training job: ``training.members_per_job`` at a time.

    In (subset, seed) order; the last job takes what is left.
    """
    found, size = members(config), config["training"]["members_per_job"]
    return [found[start : start + size] for start in range(0, len(found), size)]


def walker_packs(config: dict[str, Any]) -> list[list[int]]:
    """The walkers of each exploration job: ``exploration.walkers_per_job`` at a time.

    In walker order; the last job takes what is left.
    """
    found, size = [w.index for w in walkers(config)], config["exploration"]["walkers_per_job"]
    return [found[start : start + size] for start in range(0, len(found), size)]


def describe_systems(config: dict, root: Path) -> str:
    """One line per system: atoms, composition and walkers (what a campaign will explore)."""
    from almomd.settings.files import structures

    built = structures(config, root)
    lines = []
    for name, atoms in built.items():
        own = [w for w in walkers(config) if w.system == name]
        temperatures = sorted({w.temperature for w in own})
        biased = " biased" if systems.exploration(config, name)["bias"] else ""
        lines.append(
            f"system {name}: {len(atoms)} atoms ({atoms.get_chemical_formula()}), "
            f"{len(own)}{biased} walker(s) at {', '.join(f'{t:g}' for t in temperatures)} K"
        )
    return "\n".join(lines)
