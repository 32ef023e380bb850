"""The structures a campaign explores: one or several systems, one potential for all.

A campaign names its systems in ``systems`` (a list), or gives one ``system``
(read as a list of one). Each system has a name, a structure (a file times a
supercell, or derived from an earlier system by removing, substituting or
inserting atoms: a vacancy, a substitution, an interstitial) and optionally its
own exploration settings (temperatures, replicas, steps, bias, ramp), which
override the campaign's ``exploration`` section for its walkers.

Every frame the campaign makes carries its system's name (``al_system``);
frames of the user's files that do not are assigned by composition
(:func:`tag`). Walkers, held-out conditions, selection thresholds and the
reported errors are per system.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from almomd.data.frames import UNASSIGNED

#: Exploration keys a system may set for its own walkers.
OWN_EXPLORATION = ("temperatures", "replicas", "steps", "temperature_end", "bias")


def normalized(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The campaign's systems as a list, whichever of ``system`` or ``systems`` it gives.

    A single ``system`` is named by its ``name`` key, else by its structure
    file's stem.
    """
    if config.get("systems") is not None:
        return config["systems"]
    single = dict(config["system"])
    if "name" not in single:
        stem = Path(single["structure"]).stem
        single["name"] = "".join(c if c.isalnum() or c in "_-." else "_" for c in stem) or "system"
    return [single]


def names(config: dict[str, Any]) -> list[str]:
    """The systems' names, in the configured order."""
    return [system["name"] for system in normalized(config)]


def spec(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The configuration entry of system ``name``."""
    for system in normalized(config):
        if system["name"] == name:
            return system
    raise KeyError(f"no system named {name!r} (systems: {', '.join(names(config))})")


def key(config: dict[str, Any], name: str) -> str:
    """The config key of system ``name`` in messages (``system`` when it is the only one)."""
    return "system" if len(normalized(config)) == 1 else f"systems[{name}]"


def exploration(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The exploration settings of system ``name``: the campaign's, with its own on top."""
    own = spec(config, name).get("exploration") or {}
    return copy.deepcopy(config["exploration"]) | copy.deepcopy(own)


def _read(path: str) -> Atoms:
    import ase.io

    return ase.io.read(path, index=0)


def structure(config: dict[str, Any], name: str, read=_read) -> Atoms:
    """The starting structure of system ``name`` (without calculator).

    ``read`` reads a structure file (a parameter so that validation can report
    the file's key).
    """
    entry = spec(config, name)
    if entry.get("from") is not None:
        atoms = derive(structure(config, entry["from"], read), entry, key(config, name))
    else:
        atoms = read(entry["structure"]).repeat(tuple(entry.get("supercell", (1, 1, 1))))
    atoms.calc = None
    atoms.info = {}
    return atoms


def derive(parent: Atoms, entry: Mapping[str, Any], key: str) -> Atoms:
    """``parent`` with the entry's substitutions, removals, then insertions applied.

    ``substitute`` and ``remove`` take atom indices of the parent;
    ``insert`` takes a symbol and fractional coordinates. ``key`` names the
    system's config key in errors.
    """
    from almomd.errors import ConfigError

    atoms = parent.copy()
    n = len(atoms)
    for change in [*entry.get("substitute", []), *entry.get("insert", [])]:
        if change["symbol"] not in atomic_numbers:
            raise ConfigError(
                f"config key {key}: {change['symbol']!r} is not a chemical element; "
                "write its symbol (e.g. Cu, I)"
            )
    for change in entry.get("substitute", []):
        index = change["index"]
        if not 0 <= index < n:
            raise ConfigError(
                f"config key {key}.substitute: index {index} is outside 0..{n - 1} "
                f"(the atoms of system {entry['from']!r}); fix the index"
            )
        atoms[index].symbol = change["symbol"]
    removed = sorted(set(entry.get("remove", [])))
    if any(not 0 <= i < n for i in removed):
        raise ConfigError(
            f"config key {key}.remove: indices {removed} must lie in 0..{n - 1} "
            f"(the atoms of system {entry['from']!r}); fix them"
        )
    for index in reversed(removed):
        del atoms[index]
    for change in entry.get("insert", []):
        position = np.asarray(change["position"], dtype=float) @ atoms.cell.array
        atoms += Atoms(change["symbol"], positions=[position])
    return atoms


def tag(frames: Sequence[Atoms], structures: Mapping[str, Atoms]) -> None:
    """Give every frame without a system (``al_system`` missing or unassigned) its own.

    With one system every frame is its; otherwise a frame belongs to the one
    system of its composition (element counts), else it is ``unassigned``.
    """
    untagged = [a for a in frames if a.info.get("al_system", UNASSIGNED) == UNASSIGNED]
    if len(structures) == 1:
        (only,) = structures
        for atoms in untagged:
            atoms.info["al_system"] = only
        return
    compositions: dict[tuple, list[str]] = {}
    for name, atoms in structures.items():
        compositions.setdefault(_composition(atoms), []).append(name)
    for atoms in untagged:
        matches = compositions.get(_composition(atoms), [])
        atoms.info["al_system"] = matches[0] if len(matches) == 1 else UNASSIGNED


def _composition(atoms: Atoms) -> tuple:
    return tuple(sorted(Counter(atoms.get_chemical_symbols()).items()))
