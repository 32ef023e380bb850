"""Exploration: MLIP molecular dynamics under ensemble uncertainty.

A walker runs NVT Langevin or NPT (Langevin BAOAB, isotropic barostat) with the
ensemble mean as the potential, optionally plus the uncertainty bias of
:mod:`almomd.ensemble.bias` and with its thermostat ramped linearly to
``temperature_end``. Every ``log_interval`` steps it records the frame with the
ensemble's (unbiased) energy, forces and uncertainties. It stops early, keeping
what it has, when the structure becomes unphysical (two atoms closer than
``min_distance``, non-finite positions, or under NPT a volume outside
``[1/MAX_VOLUME_CHANGE, MAX_VOLUME_CHANGE]`` times the start) or the uncertainty
exceeds the ceiling ``max_uncertainty``; with ``restarts`` it goes on instead
from its last frame that passed every check, with new velocities.

Every logged frame keeps the walker's momenta and whether it passed every check
(``md_trusted``), so that the next iteration's walker can go on from the last
trusted frame (:mod:`almomd.exploration.continuation`); ``md_elapsed_fs`` is
the walker's MD time summed over the iterations it went on through.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.constraints import FixCom
from ase.md import velocitydistribution
from ase.md.langevin import Langevin
from ase.md.langevinbaoab import LangevinBAOAB

from almomd.data.frames import min_interatomic_distance, write_frames
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.ensemble.uncertainty import force_spread

log = logging.getLogger(__name__)

#: Largest factor by which an NPT walker's volume may change before it is stopped.
MAX_VOLUME_CHANGE = 1.5


@dataclass(frozen=True)
class MDSettings:
    """Settings of one walker's run (see the ``exploration`` config section)."""

    thermostat: str
    temperature: float
    timestep: float
    friction: float
    steps: int
    log_interval: int
    min_distance: float
    pressure: float = 0.0
    barostat_time: float = 500.0
    max_uncertainty: float | None = None
    uncertainty_column: str = "u_force_max"
    temperature_end: float | None = None
    bias: dict | None = None
    restarts: int = 0

    def target_temperature(self, step: int) -> float:
        """The thermostat's temperature at ``step`` (a linear ramp with ``temperature_end``)."""
        if self.temperature_end is None or self.steps == 0:
            return self.temperature
        return self.temperature + (self.temperature_end - self.temperature) * step / self.steps


def langevin(
    atoms: Atoms, timestep_fs: float, temperature: float, friction: float, rng: np.random.Generator
) -> Langevin:
    """NVT Langevin dynamics that sample the canonical distribution, small cells included.

    ASE's own removal of the centre-of-mass drift (``fixcm=True``) does not sample
    it exactly, most visibly in cells of a few dozen atoms; the centre of mass
    is held by the ``FixCom`` constraint instead, as ASE recommends.
    """
    if not any(isinstance(c, FixCom) for c in atoms.constraints):
        atoms.set_constraint([*atoms.constraints, FixCom()])
    return Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Fresh Maxwell-Boltzmann velocities at ``temperature``, without centre-of-mass drift."""
    draw = getattr(velocitydistribution, "thermalize_momenta", None)  # ASE >= 3.29
    if draw is None:
        velocitydistribution.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    else:
        draw(atoms, temperature, rng=rng)
    velocitydistribution.Stationary(atoms)


def make_dynamics(atoms: Atoms, settings: MDSettings, rng: np.random.Generator):
    """Return the ASE dynamics object for ``settings``."""
    dt = settings.timestep * units.fs
    if settings.thermostat == "nvt_langevin":
        return langevin(atoms, settings.timestep, settings.temperature, settings.friction, rng)
    if settings.thermostat == "npt":
        return LangevinBAOAB(
            atoms,
            dt,
            temperature_K=settings.temperature,
            externalstress=-settings.pressure * units.GPa,  # ASE: stress = -pressure
            hydrostatic=True,
            T_tau=units.fs / settings.friction,
            P_tau=settings.barostat_time * units.fs,
            rng=rng,
        )
    raise ValueError(f"unknown thermostat {settings.thermostat!r}")


def snapshot(
    atoms: Atoms, calc: EnsembleCalculator, walker: int, step: int, settings: MDSettings
) -> Atoms:
    """The logged frame: positions, the ensemble's unbiased predictions, uncertainties."""
    results = calc.results
    frame = Atoms(
        symbols=atoms.get_chemical_symbols(),
        positions=atoms.get_positions(),
        cell=atoms.get_cell(),
        pbc=atoms.get_pbc(),
    )
    frame.set_momenta(atoms.get_momenta(), apply_constraint=False)  # to go on from here
    frame.arrays["ens_forces"] = np.mean(results["member_forces"], axis=0)
    frame.arrays["force_spread"] = force_spread(results["member_forces"])  # where it is uncertain
    if "novelty" in results:  # and where it is new
        frame.arrays["novelty"] = results["novelty"]
    if "descriptor" in results:  # its place in the members' feature space (diverse selection)
        frame.info["ens_descriptor"] = results["descriptor"]
    frame.info.update(
        al_walker=walker,
        al_step=step,
        md_time_fs=step * settings.timestep,
        md_temperature=float(atoms.get_temperature()),
        md_target_temperature=float(settings.target_temperature(step)),
        md_bias_energy=float(results.get("bias_energy", 0.0)),
        md_bias_width=float(results.get("bias_width", math.nan)),
        ens_energy=float(np.mean(results["member_energies"])),
        **{f"u_{key}": float(value) for key, value in results["uncertainty"].items()},
    )
    return frame


def stop_reason(atoms: Atoms, settings: MDSettings, start_volume: float, u: float) -> str:
    """Why MD must stop now (``completed`` if it may go on)."""
    volume_ratio = atoms.get_volume() / start_volume if start_volume else 1.0
    if not np.isfinite(atoms.positions).all():
        return "non_finite"
    if min_interatomic_distance(atoms) < settings.min_distance:
        return "min_distance"
    if not 1 / MAX_VOLUME_CHANGE <= volume_ratio <= MAX_VOLUME_CHANGE:
        return "volume"
    if settings.max_uncertainty is not None and u > settings.max_uncertainty:
        return "max_uncertainty"
    return "completed"


def start_dynamics(
    start: Atoms,
    calculator: EnsembleCalculator,
    settings: MDSettings,
    rng: np.random.Generator,
    keep_velocities: bool = False,
) -> tuple[Atoms, object, float]:
    """Atoms with Maxwell-Boltzmann velocities (``keep_velocities``: ``start``'s own),
    their dynamics, and the start volume.

    With ``settings.bias`` the dynamics run on the biased ensemble
    (:class:`almomd.ensemble.bias.BiasedEnsemble`); ``atoms.calc`` is what they run on.
    """
    atoms = start.copy()
    if settings.bias:
        from almomd.ensemble.bias import BiasedEnsemble, UncertaintyBias

        calculator = BiasedEnsemble(calculator, UncertaintyBias.from_settings(settings.bias))
    atoms.calc = calculator
    if not keep_velocities:
        thermalize(atoms, settings.temperature, rng)
    start_volume = atoms.get_volume() if atoms.cell.rank == 3 else 0.0
    return atoms, make_dynamics(atoms, settings, rng), start_volume


def run_walker(
    start: Atoms,
    calculator: EnsembleCalculator,
    settings: MDSettings,
    walker: int,
    rng: np.random.Generator,
    out: Path | str,
    iteration: int = 0,
    system: str | None = None,
    continued: Atoms | None = None,
) -> tuple[list[Atoms], str]:
    """Run one walker and write its logged frames to ``out``.

    Frames carry the walker, step, MD state, ensemble predictions and, given
    ``system``, the system's name (``al_system``). ``continued`` (a frame of the
    walker's previous iteration, with momenta) is where it goes on from, with
    those velocities, instead of ``start`` with fresh ones.

    Returns
    -------
    frames, stop_reason
        The logged frames (step 0 included) and why the walker stopped
        (``completed``, ``min_distance``, ``non_finite``, ``volume`` or
        ``max_uncertainty``).
    """
    origin = start if continued is None else continued
    atoms, dyn, start_volume = start_dynamics(
        origin, calculator, settings, rng, keep_velocities=continued is not None
    )
    if continued is not None:  # volume checks against the structure, not the last frame
        start_volume = start.get_volume() if start.cell.rank == 3 else 0.0
    elapsed = float(continued.info.get("md_elapsed_fs", 0.0)) if continued is not None else 0.0
    frames: list[Atoms] = []
    reason = "completed"
    restarts = 0
    trusted = None  # the last frame that passed every check: where a restart begins
    started = time.perf_counter()
    for step in range(0, settings.steps + 1, settings.log_interval):
        if step > 0:
            if settings.temperature_end is not None:  # the ramp's target for this stretch
                dyn.set_temperature(temperature_K=settings.target_temperature(step))
            dyn.run(settings.log_interval)
        atoms.get_potential_energy()
        frame = snapshot(atoms, atoms.calc, walker, step, settings)
        frame.info.update(
            al_id=f"it{iteration}-w{walker}-s{step:06d}", al_iteration=iteration,
            md_restarts=restarts, md_elapsed_fs=elapsed + step * settings.timestep,
        )  # fmt: skip
        if continued is not None:
            frame.info["md_continued_from"] = continued.info.get("al_id", "")
        if system is not None:
            frame.info["al_system"] = system
        frames.append(frame)
        u = frame.info[settings.uncertainty_column]
        log.info(
            "walker %d step %d/%d: T=%.0f K, u=%.4g (%.1f s)",
            walker, step, settings.steps, frame.info["md_temperature"], u,
            time.perf_counter() - started,
        )  # fmt: skip
        reason = stop_reason(atoms, settings, start_volume, u)
        frame.info["md_trusted"] = reason == "completed"
        if reason == "completed":
            trusted = frame
            continue
        if restarts < settings.restarts and trusted is not None:
            restarts += 1
            log.warning(
                "walker %d: %s at step %d; restart %d/%d from step %d",
                walker, reason, step, restarts, settings.restarts, trusted.info["al_step"],
            )  # fmt: skip
            _restart_from(atoms, trusted, settings.target_temperature(step), rng)
            reason = "completed"
            continue
        log.warning("walker %d stopped at step %d: %s", walker, step, reason)
        break
    for frame in frames:
        frame.info.update(walker_stop=reason, walker_restarts=restarts)
    write_frames(out, frames)
    return frames, reason


def _restart_from(atoms: Atoms, frame: Atoms, temperature: float, rng: np.random.Generator):
    """Put ``atoms`` back at ``frame``'s positions and cell, with fresh velocities."""
    atoms.set_cell(frame.get_cell(), scale_atoms=False)
    atoms.positions = frame.positions
    thermalize(atoms, temperature, rng)
