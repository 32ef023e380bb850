"""Reference MD: held-out truth from MD with the labeler itself.

At each exploration condition ``heldout.trajectories_per_condition``
independent trajectories (own seeds and starting velocities) run from the
campaign's structure, ``frames_per_condition`` frames kept over all of them.
After ``equilibration_steps``, every step's labeled state is recorded; the
frames kept are ``stride`` steps apart, where the stride is the larger of
``steps_between`` and twice the integrated autocorrelation time of the
potential energy measured on the trajectory itself
(:func:`almomd.evaluation.statistics.autocorrelation_time`): frames closer
than that are nearly copies of one another, and an interval over them is too
narrow. Where the measured time asks for more steps than planned (for the
stride, or for a series long enough to trust the measurement: at least
``MIN_SERIES`` steps and ``RELIABLE_LENGTH`` times the time), the trajectory
runs longer, up to ``MAX_STRETCH`` times the planned steps, and its frames
spread over all of it. Every frame carries its trajectory
(``al_trajectory``), so that the intervals resample trajectories
(:mod:`almomd.evaluation.heldout`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from almomd.data.frames import labeled_copy, min_interatomic_distance, write_frames
from almomd.data.trajectories import Recorder, Trajectory, write_trajectories
from almomd.evaluation.statistics import autocorrelation_time
from almomd.exploration.md import MDSettings, start_dynamics, thermalize
from almomd.labeling.labelers import Labeler
from almomd.labeling.single_points import single_point, wants_stress
from almomd.settings.campaign import Condition
from almomd.settings.sections import Exploration

log = logging.getLogger(__name__)

#: A trajectory runs at most this many times its planned steps to decorrelate its frames.
MAX_STRETCH = 4.0
#: A measured autocorrelation time is trusted on a series of at least this many times it
#: (shorter series underestimate it: on 600 K Cu with EMT, 21 steps gave 1.9 steps,
#: 300 gave 11, 1000 and more 23-26).
RELIABLE_LENGTH = 10.0
#: Steps at least on which the autocorrelation time is measured (within MAX_STRETCH).
MIN_SERIES = 100
#: A step the labeler fails is redone this many times in a row before its trajectory stops.
MAX_REDOS = 5


def frames_per_trajectory(n_frames: int, trajectories: int) -> list[int]:
    """``n_frames`` split over ``trajectories`` as evenly as possible (the first get more)."""
    base, extra = divmod(n_frames, trajectories)
    return [base + (t < extra) for t in range(trajectories)]


def labeler_directory(out: str) -> Path:
    """Where the reference MD's labeler runs (next to its output)."""
    path = Path(out)
    return path.parent / "calc" / path.stem


def reference_settings(exploration: Exploration, condition: Condition) -> MDSettings:
    """MD settings of the reference MD at ``condition`` (thermostat as in exploration)."""
    return MDSettings(
        thermostat=exploration.thermostat,
        temperature=condition.temperature,
        timestep=exploration.timestep,
        friction=exploration.friction,
        steps=0,
        log_interval=1,
        min_distance=exploration.min_distance,
        pressure=exploration.pressure,
        barostat_time=exploration.barostat_time,
    )


class _Labeling:
    """The reference MD's calculator, which redoes the steps the labeler fails.

    A failed step is redone from the state before it: with the labeler's
    ``fallback`` settings where set (they then label the rest of the run), else
    with a fresh calculator and fresh velocities, up to ``MAX_REDOS`` times in a
    row. A labeler that fails now and then does not end the held-out truth.
    """

    def __init__(self, labeler: Labeler, directory: Path) -> None:
        self.labeler, self.directory = labeler, directory
        self.calc = labeler.calculator(directory)
        self.first_failure: str | None = None
        self.redone = 0  # steps redone after a failure, in all trajectories so far

    def fall_back(self, atoms: Atoms, exc: Exception) -> bool:
        """Switch ``atoms`` to the fallback calculator; False if there is none (or was)."""
        if self.first_failure is not None or not self.labeler.settings.fallback:
            return False
        self.first_failure = f"{type(exc).__name__}: {exc}"
        log.warning("reference MD: a step failed (%s); redone with labeler.fallback, which "
                    "labels the rest of the run", self.first_failure)  # fmt: skip
        self.labeler.discard()
        self.calc = self.labeler.calculator(self.directory / "fallback", fallback=True)
        atoms.calc = self.calc
        return True

    def start_again(self, atoms: Atoms) -> None:
        """A fresh calculator of the same settings (a failed one may keep a broken state)."""
        self.labeler.discard()
        fallback = self.first_failure is not None
        where = self.directory / "fallback" if fallback else self.directory
        self.calc = self.labeler.calculator(where, fallback=fallback)
        atoms.calc = self.calc


def _step(
    atoms: Atoms, dyn, labeling: _Labeling, temperature: float, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """Advance one MD step and return its energy and forces, redoing a failed step.

    A step the labeler fails (it raises, or gives unusable results) is redone from
    the state before it (see :class:`_Labeling`); after ``MAX_REDOS`` failures in a
    row the labeler's error is raised.
    """
    positions, momenta, cell = atoms.get_positions(), atoms.get_momenta(), atoms.get_cell()[:]
    failures = 0
    while True:
        try:
            dyn.run(1)
            energy, forces, _ = single_point(atoms, atoms.calc, False)
            return energy, forces
        except Exception as exc:
            atoms.set_cell(cell)
            atoms.set_positions(positions)
            if labeling.fall_back(atoms, exc):
                atoms.set_momenta(momenta)
                continue
            failures += 1
            if failures > MAX_REDOS:
                raise
            labeling.redone += 1
            log.warning(
                "reference MD: a step failed (%s: %s); redone from the state before it with "
                "fresh velocities (%d of at most %d in a row)",
                type(exc).__name__, exc, failures, MAX_REDOS,
            )  # fmt: skip
            labeling.start_again(atoms)
            thermalize(atoms, temperature, rng)


def _advance(atoms: Atoms, dyn, labeling: _Labeling, steps: int, temperature: float, rng) -> None:
    """Run ``steps`` MD steps, each failed one redone (see :func:`_step`)."""
    for _ in range(steps):
        _step(atoms, dyn, labeling, temperature, rng)


class _Run(Recorder):
    """One trajectory's recorded states (a :class:`Recorder`) and why it ended."""

    def __init__(self, md: MDSettings, name: str) -> None:
        super().__init__(name, md.timestep, md.temperature)
        self.reason = "completed"

    @property
    def energies(self) -> np.ndarray:
        return np.array([state[2] for state in self.states])

    def dynamics(self) -> Trajectory:
        """Every recorded step (the reference dynamics)."""
        return self.trajectory("" if self.reason == "completed" else self.reason)


def _record(
    atoms: Atoms, labeling: _Labeling, md: MDSettings, run: _Run, steps: int, dyn, rng
) -> bool:
    """Advance and record ``steps`` states; False (with the reason) when the run must stop."""
    for _ in range(steps):
        try:
            if run.states:  # the first state is the equilibrated one
                energy, forces = _step(atoms, dyn, labeling, md.temperature, rng)
            else:
                energy, forces, _ = single_point(atoms, atoms.calc, False)
        except Exception as exc:  # a code fails in its own way; keep the states so far
            failed = f"{type(exc).__name__}: {exc}"
            if labeling.first_failure:
                failed += f" (with labeler.fallback, after {labeling.first_failure})"
            run.reason = (
                f"labeler failed after {len(run.states)} steps ({MAX_REDOS + 1} tries of "
                f"the next): {failed}"
            )
            return False
        if (
            not np.isfinite(atoms.positions).all()
            or min_interatomic_distance(atoms) < md.min_distance
        ):
            run.reason = f"unphysical structure after {len(run.states)} steps"
            return False
        run.add(atoms, energy, forces)
    return True


def trajectory(
    start: Atoms,
    labeling: _Labeling,
    md: MDSettings,
    n_frames: int,
    equilibration_steps: int,
    steps_between: int,
    rng: np.random.Generator,
    name: str = "reference",
) -> tuple[list[int], _Run, float]:
    """Run one trajectory; return the indices of its kept states, the run and tau (steps)."""
    atoms, dyn, _ = start_dynamics(start, labeling.calc, md, rng)
    run = _Run(md, name)
    try:
        _advance(atoms, dyn, labeling, equilibration_steps, md.temperature, rng)
    except Exception as exc:
        run.reason = f"labeler failed in equilibration: {type(exc).__name__}: {exc}"
        return [], run, math.nan
    planned = steps_between * (n_frames - 1) + 1
    limit = max(planned, int(MAX_STRETCH * planned))
    wanted, tau, stride = planned, 0.5, steps_between
    while _record(atoms, labeling, md, run, wanted - len(run.states), dyn, rng):
        tau = autocorrelation_time(run.energies)
        stride = max(steps_between, math.ceil(2.0 * tau))
        needed = max(stride * (n_frames - 1) + 1, math.ceil(RELIABLE_LENGTH * tau), MIN_SERIES)
        wanted = min(needed, limit)
        if wanted <= len(run.states):
            break
    recorded = len(run.states)
    if recorded >= 2:
        tau = autocorrelation_time(run.energies)
    if n_frames > 1:  # the frames spread over all the trajectory ran
        stride = max(1, (recorded - 1) // (n_frames - 1))
    kept = list(range(0, recorded, stride))[:n_frames]
    if stride < 2.0 * tau and run.reason == "completed":
        log.warning(
            "reference MD: frames %d steps apart, less than 2 tau = %.0f steps (the trajectory "
            "ran its longest, %d steps): raise heldout.steps_between",
            stride, 2.0 * tau, recorded,
        )  # fmt: skip
    return kept, run, tau


def reference_md(
    start: Atoms,
    labeler: Labeler,
    md: MDSettings,
    condition: Condition,
    n_frames: int,
    equilibration_steps: int,
    steps_between: int,
    rngs: Sequence[np.random.Generator],
    out: str,
    stress: bool = False,
    dynamics_out: str | None = None,
) -> list[Atoms]:
    """Run ``len(rngs)`` trajectories with the labeler and write the kept, labeled frames.

    With ``dynamics_out`` every trajectory's recorded steps (after equilibration)
    are kept there whole (:func:`~almomd.data.trajectories.write_trajectories`):
    the reference dynamics the MLIP's observables are compared with.

    A trajectory stops early (keeping what it has) when the labeler fails or the
    structure becomes unphysical; fewer than two kept frames in all is an error.
    """
    labeling = _Labeling(labeler, labeler_directory(out))
    label = condition.label
    frames: list[Atoms] = []
    dynamics: list[Trajectory] = []
    reasons: list[str] = []
    started = time.perf_counter()
    for index, (count, rng) in enumerate(
        zip(frames_per_trajectory(n_frames, len(rngs)), rngs, strict=True)
    ):
        redone_before = labeling.redone
        name = f"c{condition.index}-t{index}"
        kept, run, tau = trajectory(
            start, labeling, md, count, equilibration_steps, steps_between, rng,
            f"reference {name}",
        )  # fmt: skip
        redone = labeling.redone - redone_before
        reasons.append(f"trajectory {index}: {run.reason}")
        if len(run.states) >= 2:
            dynamics.append(run.dynamics())
        for i in kept:
            positions, _, energy, forces, cell = run.states[i]
            atoms = start.copy()
            atoms.set_cell(cell)
            atoms.positions = positions
            sigma = None
            if wants_stress(atoms, labeling.calc, stress):  # MD needs no stress: kept frames
                energy, forces, sigma = single_point(atoms, labeling.calc, True)
            step = equilibration_steps + i
            frames.append(
                labeled_copy(
                    atoms,
                    energy,
                    forces,
                    sigma,
                    al_id=f"ref-c{condition.index}-s{step:06d}" + (f"-t{index}" if index else ""),
                    al_source="reference_md",
                    al_step=step,
                    al_labeler=labeler.name,
                    al_condition=label,
                    al_system=condition.system,
                    al_trajectory=name,
                    al_redone_steps=redone,  # failed steps of its trajectory, redone
                )
            )
        stride = kept[1] - kept[0] if len(kept) > 1 else 0
        log.info(
            "reference MD %s, trajectory %d: %d frames %d steps apart (tau of the energy "
            "%.1f steps, %d steps after equilibration; %d failed steps redone; %s; %.0f s "
            "so far)",
            label, index, len(kept), stride, tau, len(run.states), redone, run.reason,
            time.perf_counter() - started,
        )  # fmt: skip
        if run.reason != "completed":
            log.warning("reference MD %s, trajectory %d stopped: %s", label, index, run.reason)
    if len(frames) < 2:
        raise RuntimeError(
            f"reference MD at {label} kept {len(frames)} frame(s); held-out truth needs at "
            f"least 2 ({'; '.join(reasons)}): fix the labeler, or use heldout.source: audit "
            "or file"
        )
    write_frames(out, frames)
    if dynamics_out:
        write_trajectories(dynamics_out, dynamics)
    return frames
