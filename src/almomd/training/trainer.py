"""Training ensemble members with NequIP: train, package, compile."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from almomd.runner import console_script
from almomd.settings.sections import Settings
from almomd.training import nequip_run
from almomd.training.template import render_template, template_variables

log = logging.getLogger(__name__)


def _run(command: list[str], log_file: Path, cwd: Path) -> float:
    started = time.perf_counter()
    log.info("running: %s", " ".join(command))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    with open(log_file, "a") as handle:
        process = subprocess.run(command, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        tail = "".join(log_file.read_text().splitlines(keepends=True)[-25:])
        raise RuntimeError(
            f"{command[0]} failed with exit code {process.returncode} "
            f"(full output in {log_file}):\n{tail}"
        )
    log.info("finished in %.1f s", elapsed)
    return elapsed


@dataclass(frozen=True)
class MemberRun:
    """One member to train: its data, seeds, run directory and packaged model.

    ``init_model``: start from this packaged model (warm start, or a package to fine-tune)
    instead of scratch; ``shifts``: its per-type energy shifts to replace (re-referenced);
    ``perturbation``: noise on its weights (:func:`almomd.training.fine_tune.perturbed`).
    ``architecture``: nequip (the template's model) or allegro (:func:`allegro_model`).
    ``cutoff``: the neighbour lists' cutoff where it is not ``model.r_max`` (a package's).
    """

    train_file: Path | str
    seed: int
    data_seed: int
    run_dir: Path | str
    model_out: Path | str
    init_model: Path | str | None = None
    architecture: str = "nequip"
    shifts: dict[str, float] | None = None
    cutoff: float | None = None
    perturbation: float = 0.0


def train_members(
    settings: Settings,
    chemical_symbols: list[str],
    runs: Sequence[MemberRun],
    log_file: Path | str | None = None,
) -> list[dict[str, float]]:
    """Train and package ``runs`` one after the other in one process.

    Each run directory starts clean; a model is moved to its ``model_out`` only
    once every member is packaged, so an interrupted job leaves no model behind.
    NequIP's output of all members goes to ``log_file`` (default: the first
    run directory's ``nequip-output.log``). Returns the seconds of each member's
    steps (imports, training, packaging; ``wall_s`` is the whole process's).
    """
    if not runs:
        raise ValueError("train_members: no member to train")
    command = [sys.executable, "-m", "almomd.training.nequip_run"]
    staged = []
    for run in runs:
        run_dir = Path(run.run_dir).resolve()
        if run_dir.exists():  # a half-finished earlier attempt: start clean
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        variables = template_variables(
            settings,
            Path(run.train_file),
            chemical_symbols,
            run.seed,
            run.data_seed,
            run.init_model is not None,
        )
        if run.cutoff is not None:
            variables["cutoff_radius"] = run.cutoff
        rendered = render_template(
            settings.model.template,
            variables,
            settings.model.reference_energies,
            run.init_model,
            run.architecture,
            run.shifts,
            run.perturbation,
        )
        (run_dir / "nequip.yaml").write_text(yaml.safe_dump(rendered, sort_keys=False))
        model_out = Path(run.model_out).resolve()
        partial = run_dir / model_out.name  # packaged here, moved into place when complete
        command += [str(run_dir), "nequip.yaml", str(partial)]
        staged.append((run_dir, partial, model_out))
    first = staged[0][0]
    log_file = Path(log_file).resolve() if log_file else first / "nequip-output.log"
    wall = _run(command, log_file, first)
    times = []
    for run_dir, partial, model_out in staged:
        times.append(json.loads((run_dir / nequip_run.TIMES).read_text()) | {"wall_s": wall})
        model_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(partial, model_out)
    return times


def train_member(
    settings: Settings,
    train_file: Path | str,
    chemical_symbols: list[str],
    seed: int,
    data_seed: int,
    run_dir: Path | str,
    model_out: Path | str,
    init_model: Path | str | None = None,
    architecture: str = "nequip",
) -> dict[str, float]:
    """Train one member in ``run_dir`` and package it as ``model_out`` (:class:`MemberRun`).

    Returns the wall times (s) of the steps.
    """
    run = MemberRun(train_file, seed, data_seed, run_dir, model_out, init_model, architecture)
    return train_members(settings, chemical_symbols, [run])[0]


def compile_model(model: Path | str, out: Path | str, device: str, log_file: Path | str) -> float:
    """Compile a packaged model with AOTInductor for the ASE integration on ``device``."""
    out = Path(out).resolve()
    return _run(
        [
            console_script("nequip-compile"),
            str(Path(model).resolve()),
            str(out),
            "--mode",
            "aotinductor",
            "--device",
            device,
            "--target",
            "ase",
        ],
        Path(log_file),
        out.parent,
    )
