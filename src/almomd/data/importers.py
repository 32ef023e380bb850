"""Readers for labeled data people already have.

:func:`read_labeled` returns frames with energies and forces (and stress where
the file has it) in ASE units (eV, Angstrom, eV/Angstrom, eV/Angstrom^3):

- FHI-vibes ``trajectory.son`` (ALmoMD's input), read here;
- FHI-aims ``aims.out``, VASP ``vasprun.xml`` and ``OUTCAR``, Quantum ESPRESSO
  ``*.pwo``, ASE trajectories (``*.traj``), extxyz and anything else
  ``ase.io.read`` understands: read by ASE, which converts the codes' units
  (VASP's stress in kBar, for example). The energy is ASE's potential energy
  of each format: VASP's energy(sigma->0), FHI-aims' electronic free energy.

A path with wildcards (``calcs/*/aims.out``) reads every matching file, in
sorted order: one single-point output per directory is the usual layout.
"""

from __future__ import annotations

import glob
import json
import warnings
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

#: ASE format of well-known file names (ASE guesses the rest from name and content).
KNOWN_NAMES = {
    "aims.out": "aims-output",
    "vasprun.xml": "vasp-xml",
    "OUTCAR": "vasp-out",
}


def _son_blocks(text: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Split a son file: JSON objects separated by ``---``, metadata before ``===``."""
    metadata = None
    blocks: list[dict[str, Any]] = []
    current: list[str] = []

    def flush() -> None:
        chunk = "\n".join(current).strip()
        current.clear()
        if chunk:
            blocks.append(json.loads(chunk))

    for line in text.splitlines():
        marker = line.strip()
        if marker == "===" and metadata is None:
            flush()
            metadata = blocks.pop() if blocks else {}
        elif marker == "---":
            flush()
        else:
            current.append(line)
    flush()
    return metadata, blocks


def _expand(values: list[Any]) -> list[Any]:
    """FHI-vibes stores repeated symbols and masses as ``[[count, value], ...]``."""
    if values and isinstance(values[0], list):
        return [value for count, value in values for _ in range(int(count))]
    return list(values)


def read_son(path: Path | str) -> list[Atoms]:
    """Frames of an FHI-vibes ``trajectory.son`` (MD or phonopy displacements).

    The metadata (before ``===``) holds the reference ``atoms`` (symbols,
    masses, cell, pbc); each step (separated by ``---``) its ``atoms``
    (positions, velocities, cell) and ``calculator`` results (``energy``,
    ``forces``, optionally ``stress`` as a 3x3 matrix or 6 Voigt components).
    """
    metadata, steps = _son_blocks(Path(path).read_text())
    if metadata is None and steps:  # old files without === start with the metadata
        metadata = steps.pop(0)
    reference = dict((metadata or {}).get("atoms", {}))
    frames = []
    for i, step in enumerate(steps):
        atoms_dict = {**reference, **step.get("atoms", {})}
        results = step.get("calculator", {})
        if "energy" not in results or "forces" not in results:
            raise ValueError(f"{path}: step {i} has no energy or forces")
        if "symbols" in atoms_dict:
            kind = {"symbols": _expand(atoms_dict["symbols"])}
        else:
            kind = {"numbers": _expand(atoms_dict["numbers"])}
        cell = atoms_dict.get("cell")
        atoms = Atoms(
            **kind,
            positions=atoms_dict["positions"],
            cell=cell,
            pbc=atoms_dict.get("pbc", cell is not None),
        )
        if "masses" in atoms_dict:
            atoms.set_masses(_expand(atoms_dict["masses"]))
        if atoms_dict.get("velocities") is not None:
            atoms.set_velocities(atoms_dict["velocities"])
        labels = {
            "energy": float(results["energy"]),
            "forces": np.asarray(results["forces"], dtype=float),
        }
        if results.get("stress") is not None:
            stress = np.asarray(results["stress"], dtype=float)
            labels["stress"] = full_3x3_to_voigt_6_stress(stress) if stress.size == 9 else stress
        atoms.calc = SinglePointCalculator(atoms, **labels)
        frames.append(atoms)
    return frames


def matching_files(path: Path | str) -> list[Path]:
    """``path`` itself, or the sorted files matching it when it has wildcards."""
    text = str(path)
    if not any(char in text for char in "*?["):
        return [Path(path)]
    matches = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
    if not matches:
        raise FileNotFoundError(f"no file matches '{text}'")
    return matches


def read_labeled(path: Path | str) -> list[Atoms]:
    """Every frame of ``path`` (or of each file it matches) with its labels."""
    files = matching_files(path)
    if len(files) > 1:
        return [atoms for file in files for atoms in read_labeled(file)]
    path = files[0]
    if path.suffix == ".son":
        frames = read_son(path)
    else:
        with warnings.catch_warnings():  # ASE announces a future aims plugin
            warnings.simplefilter("ignore", FutureWarning)
            frames = ase.io.read(path, index=":", format=KNOWN_NAMES.get(path.name))
    for i, atoms in enumerate(frames):
        if atoms.calc is None or "forces" not in atoms.calc.results:
            raise ValueError(
                f"frame {i} of '{path}' has no forces; give a labeled file (energy and forces)"
            )
        if "energy" not in atoms.calc.results and "free_energy" not in atoms.calc.results:
            raise ValueError(f"frame {i} of '{path}' has no energy")
    return frames
