"""Labelers: one factory for every ASE calculator, and failure-tolerant labeling.

A labeler is named ``emt``, ``tblite`` or ``module:Class`` (any importable ASE
calculator class), with keyword parameters from the config. Labeling a batch
writes each frame as soon as it is done, so a killed job resumes with the
frames that remain; a failed single point goes to the failed file with its
reason instead of stopping the iteration.
"""

from __future__ import annotations

import importlib
import logging
import math
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from almomd.config import ConfigError
from almomd.data import append_frame, frame_ids, labeled_copy, read_frames, write_frames

log = logging.getLogger(__name__)

#: Forces above this (eV/Angstrom) are taken as a broken calculation, not a label.
MAX_ABS_FORCE = 1.0e3


def _emt(**parameters: Any) -> Calculator:
    from ase.calculators.emt import EMT

    return EMT(**parameters)


def _tblite(**parameters: Any) -> Calculator:
    from tblite.ase import TBLite

    parameters.setdefault("method", "GFN1-xTB")
    parameters.setdefault("verbosity", 0)
    return TBLite(**parameters)


BUILTIN: dict[str, Callable[..., Calculator]] = {"emt": _emt, "tblite": _tblite}


def _import_class(name: str) -> type:
    module_name, _, class_name = name.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def check_labeler_name(name: str, key: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a usable labeler."""
    if name in BUILTIN:
        if name == "tblite":
            try:
                importlib.import_module("tblite.ase")
            except ImportError as exc:
                raise ConfigError(
                    f"config key {key}: tblite is not installed ({exc}); pip install tblite"
                ) from exc
        return
    if ":" not in name:
        raise ConfigError(
            f"config key {key}: unknown labeler '{name}'; use one of "
            f"{sorted(BUILTIN)} or an ASE calculator as module:Class"
        )
    try:
        _import_class(name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"config key {key}: cannot import '{name}' ({exc}); install the "
            "package or correct module:Class"
        ) from exc


def with_launcher(parameters: Any, launcher: str) -> Any:
    """Replace ``{launcher}`` in every string of ``parameters`` (nested too).

    File-based codes take their command line from the parameters, e.g.
    ``command: "{launcher} pw.x -in espresso.pwi > espresso.pwo"``; the job's
    launcher (``srun -n 4`` on Slurm with ``mpi: srun`` and ``tasks: 4``, empty
    on a workstation) is filled in here.
    """
    if isinstance(parameters, str):
        return parameters.replace("{launcher}", launcher).strip()
    if isinstance(parameters, dict):
        return {key: with_launcher(value, launcher) for key, value in parameters.items()}
    if isinstance(parameters, list):
        return [with_launcher(value, launcher) for value in parameters]
    return parameters


def launcher_command(mpi: str | None, tasks: int | None) -> str:
    """The MPI launcher of a job from its ``mpi`` and ``tasks`` resources."""
    if not mpi:
        return ""
    return f"{mpi} -n {int(tasks or 1)}"


def make_calculator(name: str, parameters: dict[str, Any] | None = None) -> Calculator:
    """Return a new ASE calculator for labeler ``name`` with ``parameters``."""
    parameters = dict(parameters or {})
    if name in BUILTIN:
        return BUILTIN[name](**parameters)
    check_labeler_name(name, "labeler.name")
    return _import_class(name)(**parameters)


def single_point(
    atoms: Atoms, calculator: Calculator, stress: bool
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Return energy, forces (and stress) of ``atoms``; raise on unusable results."""
    work = atoms.copy()
    work.calc = calculator
    energy = float(work.get_potential_energy())
    forces = np.asarray(work.get_forces(), dtype=float)
    values = [energy, *forces.ravel()]
    sigma = None
    if stress:
        sigma = np.asarray(work.get_stress(voigt=True), dtype=float)
        values.extend(sigma)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("calculator returned non-finite energy, forces or stress")
    largest = float(np.abs(forces).max()) if forces.size else 0.0
    if largest > MAX_ABS_FORCE:
        raise ValueError(f"absurd force {largest:.3g} eV/A (> {MAX_ABS_FORCE:g})")
    return energy, forces, sigma


def _failure(atoms: Atoms, labeler: str, exc: BaseException) -> Atoms:
    failed = atoms.copy()
    failed.calc = None
    failed.info["al_labeler"] = labeler
    failed.info["fail_type"] = type(exc).__name__
    reason = (str(exc).strip().splitlines() or [""])[0][:300]
    failed.info["fail_reason"] = reason.replace('"', "'") or "(no message)"
    return failed


def label_frames(
    frames: Sequence[Atoms],
    labeler: str,
    parameters: dict[str, Any],
    stress: bool,
    out_labeled: Path | str,
    out_failed: Path | str,
    partial_dir: Path | str | None = None,
) -> tuple[int, int]:
    """Label ``frames`` and write the labeled and failed files.

    Each finished frame is appended to ``<partial_dir>/labeled.extxyz`` or
    ``failed.extxyz`` at once; frames found there from a killed earlier run are
    not recomputed. The outputs are written when every frame is done.

    Returns
    -------
    tuple of int
        Number of labeled and failed frames.
    """
    out_labeled, out_failed = Path(out_labeled), Path(out_failed)
    partial = (
        Path(partial_dir) if partial_dir else out_labeled.parent / (out_labeled.stem + ".partial")
    )
    partial.mkdir(parents=True, exist_ok=True)
    done_ok, done_failed = partial / "labeled.extxyz", partial / "failed.extxyz"
    labeled = read_frames(done_ok) if done_ok.exists() else []
    failed = read_frames(done_failed) if done_failed.exists() else []
    finished = set(frame_ids(labeled)) | set(frame_ids(failed))
    todo = [a for a in frames if str(a.info["al_id"]) not in finished]
    if finished:
        log.info("resuming: %d frames already done, %d to go", len(finished), len(todo))
    calculator = make_calculator(labeler, parameters) if todo else None
    for n, atoms in enumerate(todo, start=1):
        frame_id = atoms.info["al_id"]
        try:
            energy, forces, sigma = single_point(atoms, calculator, stress)
        except Exception as exc:  # every code fails differently; keep the reason
            log.warning("frame %s failed: %s: %s", frame_id, type(exc).__name__, exc)
            log.debug("%s", traceback.format_exc())
            record = _failure(atoms, labeler, exc)
            append_frame(done_failed, record)
            failed.append(record)
            calculator = make_calculator(labeler, parameters)  # fresh state
            continue
        record = labeled_copy(atoms, energy, forces, sigma, al_labeler=labeler)
        append_frame(done_ok, record)
        labeled.append(record)
        log.info(
            "labeled %d/%d (%s): E=%.4f eV, max|F|=%.3f eV/A",
            n,
            len(todo),
            frame_id,
            energy,
            float(np.abs(forces).max()),
        )
    order = {fid: i for i, fid in enumerate(frame_ids(frames))}
    labeled.sort(key=lambda a: order.get(str(a.info["al_id"]), len(order)))
    failed.sort(key=lambda a: order.get(str(a.info["al_id"]), len(order)))
    write_frames(out_labeled, labeled)
    write_frames(out_failed, failed)
    for path in (done_ok, done_failed):
        path.unlink(missing_ok=True)
    partial.rmdir()
    return len(labeled), len(failed)


def batch_of(frames: Sequence[Atoms], batch: int, n_batches: int) -> list[Atoms]:
    """Frames of batch ``batch`` when dealing ``frames`` round-robin into ``n_batches``."""
    return [a for i, a in enumerate(frames) if i % n_batches == batch]
