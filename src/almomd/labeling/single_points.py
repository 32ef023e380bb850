"""Failure-tolerant labeling of frames with a named labeler.

Each frame runs in its own directory (``<labels>/calc/<al_id>/``), whose inputs
and outputs are kept for inspection (large files gzipped). Whatever way a code
fails (an exception, a non-zero exit status, a "not converged" line in its
output, non-finite or absurd numbers) the frame goes to the failed file with the
code, the exception type and the message; with ``labeler.fallback`` set it is
first retried once with those parameters merged in. Each finished frame is
written at once, so a killed job resumes with the frames that remain.
"""

from __future__ import annotations

import logging
import math
import shutil
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from almomd.data.frames import append_frame, frame_ids, labeled_copy, read_frames, write_frames
from almomd.errors import ConfigError
from almomd.labeling.labelers import (
    CODES,
    Labeler,
    LabelerSettings,
    NotConverged,
    check_outputs,
    close,
    compress_large_files,
)

log = logging.getLogger(__name__)

#: Forces above this (eV/Angstrom) are taken as a broken calculation, not a label.
MAX_ABS_FORCE = 1.0e3


def make_calculator(
    name: str, parameters: dict[str, Any] | None = None, directory: Path | str = "."
) -> Calculator:
    """Return a new ASE calculator for labeler ``name`` with ``parameters``."""
    settings = LabelerSettings(name=name, parameters=dict(parameters or {}))
    return Labeler(settings).calculator(Path(directory))


def wants_stress(atoms: Atoms, calculator: Calculator, stress: bool) -> bool:
    """Whether to label the stress: asked for, a 3D periodic cell, and provided."""
    return (
        stress
        and bool(atoms.pbc.all())
        and atoms.cell.rank == 3
        and "stress" in calculator.implemented_properties
    )


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
    if getattr(calculator, "converged", None) is False:  # ASE's VASP sets this
        raise NotConverged("the calculator reports converged = False")
    return energy, forces, sigma


def _message(exc: BaseException) -> str:
    reason = (str(exc).strip().splitlines() or [""])[0][:300]
    return reason.replace('"', "'") or "(no message)"


def _failure(atoms: Atoms, labeler: str, exc: BaseException, first: str | None) -> Atoms:
    failed = atoms.copy()
    failed.calc = None
    failed.info["al_labeler"] = labeler
    failed.info["fail_type"] = type(exc).__name__
    reason = _message(exc)
    failed.info["fail_reason"] = f"{first}; with fallback: {reason}" if first else reason
    return failed


class _Attempt:
    """One try of one frame in its directory."""

    def __init__(self, labeler: Labeler, directory: Path):
        self.labeler = labeler
        self.directory = directory
        self.stress_missing = False

    def run(self, atoms: Atoms, fallback: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
        if self.directory.exists():
            shutil.rmtree(self.directory)  # a killed earlier try leaves nothing behind
        calc = self.labeler.calculator(self.directory, fallback)
        settings = self.labeler.settings
        try:
            stress = wants_stress(atoms, calc, settings.stress)
            self.stress_missing = settings.stress and not stress
            result = single_point(atoms, calc, stress)
            check_outputs(self.directory, settings.patterns)
        finally:
            if self.labeler.name in CODES:
                close(calc)
        return result


def _label_one(atoms: Atoms, labeler: Labeler, directory: Path) -> Atoms:
    """Label one frame (retrying once with the fallback); raise the last failure."""
    first = None
    attempt = _Attempt(labeler, directory)
    try:
        energy, forces, sigma = attempt.run(atoms, fallback=False)
    except ConfigError:
        raise
    except Exception as exc:  # every code fails differently; keep the reason
        if not labeler.settings.fallback:
            raise
        labeler.discard()
        first = f"{type(exc).__name__}: {_message(exc)}"
        log.warning(
            "frame %s failed (%s); retrying with labeler.fallback", atoms.info["al_id"], first
        )
        attempt = _Attempt(labeler, directory / "fallback")
        try:
            energy, forces, sigma = attempt.run(atoms, fallback=True)
        except Exception as again:
            again.al_first_failure = first  # type: ignore[attr-defined]
            raise again from exc
    if attempt.stress_missing:
        log.warning(
            "frame %s: no stress labeled (not periodic or not provided)", atoms.info["al_id"]
        )
    extra = {"al_first_failure": first} if first else {}
    return labeled_copy(atoms, energy, forces, sigma, al_labeler=labeler.name, **extra)


def _finish_directory(directory: Path, settings: LabelerSettings, ok: bool) -> None:
    if not directory.is_dir():
        return
    if (ok and not settings.keep_files) or not any(directory.iterdir()):
        shutil.rmtree(directory)
    else:
        compress_large_files(directory, settings.compress_above_kb)


def label_frames(
    frames: Sequence[Atoms],
    labeler: Labeler,
    out_labeled: Path | str,
    out_failed: Path | str,
    workdir: Path | str | None = None,
) -> tuple[int, int]:
    """Label ``frames`` and write the labeled and failed files.

    Frame ``al_id`` runs in ``<workdir>/<al_id>`` (default workdir: ``calc`` next
    to ``out_labeled``). Each finished frame is appended to a ``.partial``
    folder at once; frames found there from a killed earlier run are not
    recomputed. The outputs are written when every frame is done.

    Returns
    -------
    tuple of int
        Number of labeled and failed frames.
    """
    out_labeled, out_failed = Path(out_labeled), Path(out_failed)
    workdir = Path(workdir) if workdir else out_labeled.parent / "calc"
    partial = out_labeled.parent / (out_labeled.stem + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    done_ok, done_failed = partial / "labeled.extxyz", partial / "failed.extxyz"
    labeled = read_frames(done_ok) if done_ok.exists() else []
    failed = read_frames(done_failed) if done_failed.exists() else []
    finished = set(frame_ids(labeled)) | set(frame_ids(failed))
    todo = [a for a in frames if str(a.info["al_id"]) not in finished]
    if finished:
        log.info("resuming: %d frames already done, %d to go", len(finished), len(todo))
    for n, atoms in enumerate(todo, start=1):
        frame_id = str(atoms.info["al_id"])
        directory = workdir / frame_id
        try:
            record = _label_one(atoms, labeler, directory)
        except ConfigError:
            raise
        except Exception as exc:
            log.warning("frame %s failed: %s: %s", frame_id, type(exc).__name__, exc)
            log.debug("%s", traceback.format_exc())
            record = _failure(atoms, labeler.name, exc, getattr(exc, "al_first_failure", None))
            append_frame(done_failed, record)
            failed.append(record)
            labeler.discard()  # the next frame starts from a fresh state
            _finish_directory(directory, labeler.settings, ok=False)
            continue
        _finish_directory(directory, labeler.settings, ok=True)
        append_frame(done_ok, record)
        labeled.append(record)
        log.info(
            "labeled %d/%d (%s): E=%.4f eV, max|F|=%.3f eV/A",
            n,
            len(todo),
            frame_id,
            record.get_potential_energy(),
            float(np.abs(record.get_forces()).max()),
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


def check_labeler(atoms: Atoms, labeler: Labeler, directory: Path | str) -> Atoms:
    """Label ``atoms`` once (with the fallback, where set) to find a broken labeler early.

    Raises RuntimeError naming the labeler, the structure and the reason: nothing
    else is labeled with a labeler that fails on the campaign's own structure.
    """
    directory = Path(directory)
    try:
        record = _label_one(atoms, labeler, directory)
    except ConfigError:
        raise
    except Exception as exc:
        first = getattr(exc, "al_first_failure", None)
        reason = f"{type(exc).__name__}: {_message(exc)}"
        raise RuntimeError(
            f"labeler {labeler.name} cannot label the campaign's structure "
            f"({atoms.get_chemical_formula()}, {len(atoms)} atoms): "
            + (f"{first}; with labeler.fallback: {reason}" if first else reason)
            + ". Fix the labeler (labeler.parameters, its command or environment) and run "
            "snakemake again: no other frame was labeled, nothing else ran"
        ) from exc
    _finish_directory(directory, labeler.settings, ok=True)
    return record


def batch_of(frames: Sequence[Atoms], batch: int, n_batches: int) -> list[Atoms]:
    """Frames of batch ``batch`` when dealing ``frames`` round-robin into ``n_batches``."""
    return [a for i, a in enumerate(frames) if i % n_batches == batch]
