"""MD trajectories kept whole: every step's positions, velocities, energy and forces.

The reference dynamics (the labeler's own MD, :mod:`almomd.evaluation.reference_md`)
and the MLIP MD the observables are measured on (:mod:`almomd.observables`) are
kept as :class:`Trajectory`: positions unwrapped (as the MD moved them, so that
displacements are true ones), at a fixed ``timestep`` between stored states.
Several trajectories of one condition live in one ``.npz`` file
(:func:`write_trajectories`, :func:`read_trajectories`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units

#: the arrays of a trajectory, each with time first
_ARRAYS = ("positions", "velocities", "energies", "forces", "cells")


@dataclass
class Trajectory:
    """One MD trajectory of ``T`` stored states of ``N`` atoms (eV, A, fs units).

    ``velocities`` in A/fs (not ASE's unit); ``energies`` the potential energy (eV); ``cells``
    ``(T, 3, 3)``. ``timestep`` is the time between two stored states (fs);
    ``name`` says where it comes from (``reference t0``, ``member 0_1``, ...).
    ``events`` holds what stopped it early (an empty string: it ran its course).
    """

    symbols: list[str]
    masses: np.ndarray  # (N,) amu
    positions: np.ndarray  # (T, N, 3)
    velocities: np.ndarray  # (T, N, 3)
    energies: np.ndarray  # (T,)
    forces: np.ndarray  # (T, N, 3)
    cells: np.ndarray  # (T, 3, 3)
    timestep: float
    temperature: float
    name: str = ""
    stopped: str = ""
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. the uncertainty per state

    def __len__(self) -> int:
        return len(self.energies)

    @property
    def duration(self) -> float:
        """The time the trajectory covers (fs)."""
        return max(len(self) - 1, 0) * self.timestep

    def atoms(self, index: int) -> Atoms:
        """State ``index`` as ASE atoms (positions as stored, unwrapped)."""
        atoms = Atoms(
            self.symbols,
            positions=self.positions[index],
            cell=self.cells[index],
            pbc=True,
            masses=self.masses,
        )
        atoms.set_velocities(self.velocities[index] / units.fs)
        return atoms

    def part(self, start: int, stop: int) -> Trajectory:
        """States ``start`` to ``stop`` (a block of the trajectory)."""
        cut = slice(start, stop)
        return Trajectory(
            self.symbols,
            self.masses,
            self.positions[cut],
            self.velocities[cut],
            self.energies[cut],
            self.forces[cut],
            self.cells[cut],
            self.timestep,
            self.temperature,
            self.name,
            self.stopped,
            {k: v[cut] for k, v in self.extra.items()},
        )

    def blocks(self, n: int) -> list[Trajectory]:
        """The trajectory cut into ``n`` consecutive blocks of equal length."""
        size = len(self) // n
        return [self.part(b * size, (b + 1) * size) for b in range(n)]


def velocities(atoms: Atoms) -> np.ndarray:
    """``atoms``' velocities in A/fs (ASE's own unit of time is about 10 fs)."""
    return atoms.get_velocities() * units.fs


class Recorder:
    """Collects an MD run's states one by one into a :class:`Trajectory`."""

    def __init__(self, name: str, timestep: float, temperature: float) -> None:
        self.name, self.timestep, self.temperature = name, timestep, temperature
        self.states: list[tuple] = []
        self.extra: dict[str, list[float]] = {}
        self.symbols: list[str] = []
        self.masses = np.zeros(0)

    def add(self, atoms: Atoms, energy: float, forces: np.ndarray, **extra: float) -> None:
        """Record ``atoms``'s state (positions, velocities, cell) with its energy and forces."""
        if not self.states:
            self.symbols, self.masses = atoms.get_chemical_symbols(), atoms.get_masses()
        self.states.append(
            (
                atoms.get_positions(),
                velocities(atoms),
                float(energy),
                np.asarray(forces, float).copy(),
                atoms.get_cell()[:],
            )
        )
        for key, value in extra.items():
            self.extra.setdefault(key, []).append(float(value))

    def __len__(self) -> int:
        return len(self.states)

    def trajectory(self, stopped: str = "") -> Trajectory:
        """What was recorded (``stopped``: why it ended early, if it did)."""
        positions, velocities, energies, forces, cells = (
            np.array([s[i] for s in self.states]) for i in range(5)
        )
        return Trajectory(
            list(self.symbols),
            np.asarray(self.masses, float),
            positions,
            velocities,
            energies,
            forces,
            cells,
            self.timestep,
            self.temperature,
            self.name,
            stopped,
            {k: np.array(v) for k, v in self.extra.items()},
        )


def write_trajectories(path: Path | str, trajectories: Sequence[Trajectory]) -> None:
    """Write ``trajectories`` (one condition's) to one compressed ``.npz`` file."""
    arrays: dict[str, np.ndarray] = {"count": np.array(len(trajectories))}
    for i, t in enumerate(trajectories):
        prefix = f"t{i}_"
        arrays |= {prefix + key: getattr(t, key) for key in _ARRAYS}
        arrays |= {prefix + "extra_" + key: value for key, value in t.extra.items()}
        arrays[prefix + "symbols"] = np.array(t.symbols)
        arrays[prefix + "masses"] = t.masses
        arrays[prefix + "meta"] = np.array([t.timestep, t.temperature])
        arrays[prefix + "text"] = np.array([t.name, t.stopped])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # np.savez would add .npz to a name without it
        np.savez_compressed(handle, **arrays)


def read_trajectories(path: Path | str) -> list[Trajectory]:
    """The trajectories of a file written by :func:`write_trajectories`."""
    with np.load(path) as data:
        found = []
        for i in range(int(data["count"])):
            prefix = f"t{i}_"
            extra = {
                key[len(prefix) + 6 :]: data[key]
                for key in data.files
                if key.startswith(prefix + "extra_")
            }
            timestep, temperature = (float(v) for v in data[prefix + "meta"])
            name, stopped = (str(v) for v in data[prefix + "text"])
            found.append(
                Trajectory(
                    [str(s) for s in data[prefix + "symbols"]],
                    data[prefix + "masses"],
                    *(data[prefix + key] for key in _ARRAYS),
                    timestep,
                    temperature,
                    name,
                    stopped,
                    extra,
                )
            )
    return found


def from_frames(
    frames: Sequence[Atoms], timestep: float, temperature: float, name: str
) -> Trajectory:
    """A user's MD (labeled frames ``timestep`` fs apart) as a :class:`Trajectory`.

    Positions are unwrapped (each step's displacement taken as its nearest periodic
    image: codes write wrapped positions); velocities are the frames' own where they
    carry momenta, else central differences of the positions (one-sided at the ends).
    """
    if len(frames) < 3:
        raise ValueError(f"{name}: {len(frames)} frames are no trajectory (need at least 3)")
    cells = np.array([a.cell[:] for a in frames])
    raw = np.array([a.get_positions() for a in frames])
    steps = raw[1:] - raw[:-1]
    fractional = np.einsum("tij,tjk->tik", steps, np.linalg.inv(cells[:-1]))
    steps = np.einsum("tij,tjk->tik", fractional - np.round(fractional), cells[:-1])
    positions = raw[0] + np.concatenate([np.zeros_like(raw[:1]), np.cumsum(steps, axis=0)])
    if all(a.has("momenta") and np.any(a.get_momenta()) for a in frames):
        found = np.array([velocities(a) for a in frames])
    else:
        found = np.gradient(positions, timestep, axis=0)
    return Trajectory(
        frames[0].get_chemical_symbols(),
        frames[0].get_masses(),
        positions,
        found,
        np.array([a.get_potential_energy() for a in frames]),
        np.array([a.get_forces() for a in frames]),
        cells,
        timestep,
        temperature,
        name,
    )
