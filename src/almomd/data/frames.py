"""Labeled frames on disk: extxyz I/O, provenance, splitting, subsets and merging.

Every labeled frame carries its provenance in ``atoms.info``:

``al_id``
    unique frame id (e.g. ``init-0003`` or ``it1-w0-s000120``);
``al_source``
    ``initial``, ``user``, ``active``, ``random`` (the random baseline),
    ``audit`` (held out, never trained on) or ``reference_md``;
``al_iteration``, ``al_walker``, ``al_step``
    where an actively selected frame was found (-1 when not applicable);
``al_uncertainty``
    the selection uncertainty of the frame (NaN when not applicable);
``al_labeler``
    the calculator that produced the label;
``al_condition``
    the exploration condition the frame was found at (e.g. ``600 K``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

#: the system of a frame no structure of the campaign claims
UNASSIGNED = "unassigned"

PROVENANCE_DEFAULTS: dict[str, object] = {
    "al_id": "unknown",
    "al_source": "unknown",
    "al_iteration": -1,
    "al_walker": -1,
    "al_step": -1,
    "al_uncertainty": math.nan,
    "al_labeler": "unknown",
    "al_condition": "unknown",
    "al_system": UNASSIGNED,
}


def system_of(atoms: Atoms) -> str:
    """The system a frame belongs to (see :func:`almomd.settings.systems.tag`)."""
    return str(atoms.info.get("al_system", UNASSIGNED))


class DataFileError(ValueError):
    """A data file of the campaign cannot be read; the message names the file and the fix."""


def read_frames(path: Path | str) -> list[Atoms]:
    """Read every frame of ``path`` (an empty file gives an empty list).

    Raises DataFileError naming the file when it is truncated or corrupt.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return []
    try:
        return list(ase.io.read(path, index=":"))
    except Exception as exc:  # extxyz raises several kinds on a truncated file
        raise DataFileError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); it was truncated or "
            "edited: delete it, and the next snakemake run makes it again or says how "
            "(and what else, if anything, must be redone)"
        ) from exc


def _check_writable(frames: Sequence[Atoms]) -> None:
    """Refuse empty strings in ``info``: extxyz would read the next key as their value."""
    for atoms in frames:
        empty = [key for key, value in atoms.info.items() if isinstance(value, str) and not value]
        if empty:
            raise ValueError(
                f"frame {atoms.info.get('al_id', '?')}: empty text in info {empty}; "
                "extxyz cannot store it (give a value or remove the key)"
            )


def write_frames(path: Path | str, frames: Sequence[Atoms]) -> None:
    """Write ``frames`` as extended XYZ, atomically (an empty list gives an empty file)."""
    _check_writable(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if frames:
        ase.io.write(tmp, list(frames), format="extxyz")
    else:
        tmp.write_text("")
    os.replace(tmp, path)


def append_frame(path: Path | str, atoms: Atoms) -> None:
    """Append one frame to an extended XYZ file and flush it to disk."""
    _check_writable([atoms])
    with open(path, "a") as handle:
        ase.io.write(handle, atoms, format="extxyz")
        handle.flush()
        os.fsync(handle.fileno())


def labeled_copy(
    atoms: Atoms,
    energy: float,
    forces: np.ndarray,
    stress: np.ndarray | None = None,
    **provenance: object,
) -> Atoms:
    """Return a bare copy of ``atoms`` carrying a label and provenance.

    Arrays and info of the source (velocities, ensemble predictions) are dropped
    so that a training file holds positions, labels and provenance only.
    """
    copy = Atoms(
        symbols=atoms.get_chemical_symbols(),
        positions=atoms.get_positions(),
        cell=atoms.get_cell(),
        pbc=atoms.get_pbc(),
    )
    info = {key: atoms.info.get(key, default) for key, default in PROVENANCE_DEFAULTS.items()}
    info.update(provenance)
    copy.info.update(info)
    results = {"energy": float(energy), "forces": np.asarray(forces, dtype=float)}
    if stress is not None:
        results["stress"] = np.asarray(stress, dtype=float)
    copy.calc = SinglePointCalculator(copy, **results)
    return copy


def read_user_frames(path: Path | str, prefix: str) -> list[Atoms]:
    """Labeled frames of a user's file, given provenance ``al_id = <prefix>-NNNN``.

    Any format of :func:`almomd.data.importers.read_labeled` (FHI-vibes, FHI-aims,
    VASP, Quantum ESPRESSO, ASE); energies, forces (and stress, if present) are
    taken from the file.
    """
    from almomd.data.importers import read_labeled

    frames = []
    for i, atoms in enumerate(read_labeled(path)):
        stress = atoms.get_stress() if "stress" in atoms.calc.results else None
        frames.append(
            labeled_copy(
                atoms,
                atoms.get_potential_energy(),
                atoms.get_forces(),
                stress,
                al_id=f"{prefix}-{i:04d}",
                al_source="user",
                al_labeler="user",
            )
        )
    return frames


def frame_ids(frames: Iterable[Atoms]) -> list[str]:
    """Return the ``al_id`` of every frame."""
    return [str(atoms.info.get("al_id", "")) for atoms in frames]


def check_unique_ids(frames: Sequence[Atoms], what: str) -> None:
    """Raise ``ValueError`` if two frames share an id or one has none."""
    ids = frame_ids(frames)
    if "" in ids:
        raise ValueError(f"{what}: a frame has no al_id provenance")
    seen: set[str] = set()
    duplicates = sorted({i for i in ids if i in seen or seen.add(i)})
    if duplicates:
        raise ValueError(f"{what}: duplicated frame ids {duplicates[:5]}")


def merge(training: Sequence[Atoms], *new_sets: Sequence[Atoms]) -> list[Atoms]:
    """Return ``training`` followed by every frame of ``new_sets``.

    Raises
    ------
    ValueError
        If a frame id would appear twice (a frame labeled twice or merged twice).
    """
    merged = list(training)
    for frames in new_sets:
        merged.extend(frames)
    check_unique_ids(merged, "merge")
    return merged


def split_test_set(
    frames: Sequence[Atoms], size: int, rng: np.random.Generator
) -> tuple[list[Atoms], list[Atoms]]:
    """Split ``frames`` into (training, test) with ``size`` random test frames."""
    if size >= len(frames):
        raise ValueError(
            f"cannot split {size} test frames off {len(frames)} labeled frames; "
            "lower test_set.size or generate more initial frames"
        )
    test_idx = set(rng.choice(len(frames), size=size, replace=False).tolist())
    train = [a for i, a in enumerate(frames) if i not in test_idx]
    test = [a for i, a in enumerate(frames) if i in test_idx]
    return train, test


def split_test_set_by_system(
    frames: Sequence[Atoms], size: int, rng: np.random.Generator
) -> tuple[list[Atoms], list[Atoms]]:
    """:func:`split_test_set` for each system (``al_system``) on its own, ``size`` frames each."""
    train: list[Atoms] = []
    test: list[Atoms] = []
    for name in dict.fromkeys(system_of(a) for a in frames):
        group_train, group_test = split_test_set(
            [a for a in frames if system_of(a) == name], size, rng
        )
        train += group_train
        test += group_test
    return train, test


def subsample(frames: Sequence[Atoms], fraction: float, rng: np.random.Generator) -> list[Atoms]:
    """Return a random subset with ``round(fraction * n)`` frames (at least 2), in order."""
    n = len(frames)
    if n < 2:
        raise ValueError(f"a training set of {n} frames cannot be subsampled")
    size = min(n, max(2, round(fraction * n)))
    chosen = np.sort(rng.choice(n, size=size, replace=False))
    return [frames[i] for i in chosen]


def min_interatomic_distance(atoms: Atoms) -> float:
    """Smallest distance between two atoms (minimum image), inf for one atom."""
    if len(atoms) < 2:
        return math.inf
    distances = atoms.get_all_distances(mic=any(atoms.pbc))
    np.fill_diagonal(distances, np.inf)
    return float(distances.min())


def _finite(value: Any) -> Any:
    """``value`` with every NaN float replaced by None (valid JSON)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path | str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON (NaN as null)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_finite(payload), indent=2) + "\n")
