"""MLIP MD for observables: one trajectory per ensemble member, and stability.

Each member drives a trajectory of its own (own seed and starting velocities)
at the condition, with the protocol of the reference dynamics (thermostat,
friction, timestep, equilibration), so that the only difference from the
reference is the potential; the spread of the members' observables is the
model interval (:mod:`almomd.observables.intervals`). All members' trajectories
advance together: each step evaluates every member on every trajectory in one
batched pass (:mod:`almomd.exploration.packed`), which also gives the
ensemble's uncertainty on each, for the stability checks.

Stability: a trajectory stops at its first unphysical event (two atoms closer
than ``min_distance``, non-finite positions, a force above ``max_force``, a
temperature above ``MAX_HEATING`` times the target, the ensemble's largest
force deviation above ``max_uncertainty``); the time of that event is its
stability time. The energy drift of NVE (velocity Verlet) with the ensemble mean,
from the end of the first member's trajectory, measures how well the MD
conserves energy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_changes
from ase.md.verlet import VelocityVerlet

from almomd.data.trajectories import Recorder, Trajectory
from almomd.ensemble.calculator import EnsembleCalculator
from almomd.exploration.md import MDSettings, start_dynamics, stop_reason
from almomd.exploration.packed import Lockstep, WalkerSeat, run_together

log = logging.getLogger(__name__)

#: a trajectory heating above this many times its target temperature has blown up
MAX_HEATING = 3.0
#: meV per eV
MEV = 1000.0


@dataclass(frozen=True)
class Protocol:
    """How the observables' MD runs (the reference dynamics' protocol, plus limits)."""

    md: MDSettings
    equilibration_steps: int
    steps: int
    max_force: float
    max_uncertainty: float
    nve_steps: int


class MemberSeat(WalkerSeat):
    """A trajectory's calculator: every member evaluated in the shared pass, member
    ``member``'s energy and forces drive it (the uncertainty is the ensemble's)."""

    def __init__(self, lockstep: Lockstep, walker: int, member: int, **kwargs):
        super().__init__(lockstep, walker, **kwargs)
        self.member = member

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        found = dict(self.results)
        energy = float(found["member_energies"][self.member])
        found.update(
            energy=energy, free_energy=energy, forces=np.array(found["member_forces"][self.member])
        )
        self.results = found


def event(atoms: Atoms, protocol: Protocol, start_volume: float, results: dict) -> str:
    """The unphysical event at this state ("": none)."""
    u = float(results["uncertainty"]["force_max"])
    settings = protocol.md
    reason = stop_reason(atoms, settings, start_volume, u)
    if reason != "completed":
        return reason
    if float(np.abs(results["forces"]).max()) > protocol.max_force:
        return "max_force"
    if atoms.get_temperature() > MAX_HEATING * settings.temperature:
        return "heating"
    return ""


def member_trajectory(
    start: Atoms, seat: MemberSeat, protocol: Protocol, rng: np.random.Generator, name: str
) -> Trajectory:
    """One member's trajectory: equilibration, then ``steps`` recorded states."""
    md = protocol.md
    atoms, dyn, start_volume = start_dynamics(start, seat, md, rng)
    recorder = Recorder(name, md.timestep, md.temperature)
    for step in range(protocol.equilibration_steps + protocol.steps + 1):
        if step:
            dyn.run(1)
        atoms.get_potential_energy()
        results = seat.results
        found = event(atoms, protocol, start_volume, results)
        if found:
            when = step * md.timestep
            log.warning("%s: %s after %.0f fs", name, found, when)
            trajectory = recorder.trajectory(f"{found} at {when:.0f} fs")
            trajectory.extra["event_fs"] = np.array([when])
            return trajectory
        if step >= protocol.equilibration_steps:
            recorder.add(
                atoms,
                results["energy"],
                results["forces"],
                u_force_max=results["uncertainty"]["force_max"],
            )
    return recorder.trajectory()


def member_trajectories(
    start: Atoms,
    ensemble: EnsembleCalculator,
    protocol: Protocol,
    rngs: Sequence[np.random.Generator],
    names: Sequence[str],
) -> list[Trajectory]:
    """One trajectory per member (``rngs`` and ``names`` one per member), run together."""
    started = time.perf_counter()

    def walk(member: int):
        def run(seat: WalkerSeat) -> Trajectory:
            mine = MemberSeat(seat.lockstep, seat.walker, member)
            return member_trajectory(start, mine, protocol, rngs[member], names[member])

        return run

    found = run_together(ensemble, [walk(k) for k in range(len(rngs))])
    log.info(
        "%d member trajectories of %d steps (+%d equilibration) in %.0f s",
        len(found),
        protocol.steps,
        protocol.equilibration_steps,
        time.perf_counter() - started,
    )
    return found


def nve_drift(start: Atoms, ensemble: EnsembleCalculator, protocol: Protocol) -> dict[str, Any]:
    """Energy drift of NVE (velocity Verlet) with the ensemble mean from ``start`` (with its
    velocities): the slope of the total energy per atom (meV/atom/ps) and its fluctuation."""
    atoms = start.copy()
    atoms.calc = ensemble
    dyn = VelocityVerlet(atoms, protocol.md.timestep * units.fs)
    energies, times = [], []
    for step in range(protocol.nve_steps + 1):
        if step:
            dyn.run(1)
        energies.append(atoms.get_total_energy() / len(atoms))
        times.append(step * protocol.md.timestep / 1000.0)
        if not np.isfinite(energies[-1]) or event(atoms, protocol, 0.0, atoms.calc.results):
            break
    energies_arr = np.array(energies)
    slope = float(np.polyfit(times, energies_arr, 1)[0] * MEV) if len(times) > 2 else float("nan")
    return {
        "drift": slope,
        "steps": len(times) - 1,
        "fluctuation": float(np.std(energies_arr) * MEV),
        "unit": "meV/atom/ps",
    }


def stability(
    trajectories: Sequence[Trajectory], protocol: Protocol, nve: dict, max_drift: float
) -> dict[str, Any]:
    """The stability verdict: every trajectory ran its course and NVE kept its energy."""
    times = [float(t.extra["event_fs"][0]) if "event_fs" in t.extra else None for t in trajectories]
    events = [t.stopped for t in trajectories if t.stopped]
    first = min((t for t in times if t is not None), default=None)
    length = (protocol.equilibration_steps + protocol.steps) * protocol.md.timestep
    drift_ok = bool(np.isfinite(nve["drift"]) and abs(nve["drift"]) <= max_drift)
    return {
        "agree": not events and drift_ok,
        "first_event_fs": first,
        "ran_fs": length,
        "events": events,
        "trajectories": len(trajectories),
        "nve": nve | {"max_drift": max_drift},
    }
