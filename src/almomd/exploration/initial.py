"""Initial candidate frames generated from the starting structures.

Without a user-supplied labeled file, the initial data of each system are
strained and rattled copies of its (super)cell plus snapshots of a short MD with a cheap
calculator. They are labeled afterwards by the configured labeler.
"""

from __future__ import annotations

import logging

import numpy as np
from ase import Atoms

from almomd.exploration.md import langevin, thermalize
from almomd.labeling.single_points import make_calculator
from almomd.settings.sections import InitialData, Settings

log = logging.getLogger(__name__)


def rattled(atoms: Atoms, stdev: float, strain: float, rng: np.random.Generator) -> Atoms:
    """Copy of ``atoms`` isotropically strained by up to ``strain`` and rattled."""
    copy = atoms.copy()
    scale = 1.0 + rng.uniform(-strain, strain)
    copy.set_cell(copy.get_cell() * scale, scale_atoms=True)
    copy.positions += rng.normal(0.0, stdev, size=copy.positions.shape)
    return copy


def md_snapshots(
    atoms: Atoms,
    n: int,
    calculator_name: str,
    temperature: float,
    steps_between: int,
    rng: np.random.Generator,
) -> list[Atoms]:
    """Return ``n`` snapshots of a Langevin MD with a cheap calculator."""
    work = atoms.copy()
    work.calc = make_calculator(calculator_name)
    thermalize(work, temperature, rng)
    dyn = langevin(work, 2.0, temperature, 0.02, rng)
    frames = []
    for i in range(n):
        dyn.run(steps_between)
        frame = work.copy()
        frame.calc = None
        frame.set_constraint()  # the dynamics' FixCom, not a constraint of the frame
        frames.append(frame)
        log.info("initial MD snapshot %d/%d (T=%.0f K)", i + 1, n, work.get_temperature())
    return frames


def generate(settings: Settings, rng: np.random.Generator) -> list[Atoms]:
    """Generate the unlabeled initial frames of every system, each with ``al_id`` and ``al_system``.

    ``initial_data.n_frames`` frames per system.
    """
    frames = []
    for name in settings.system_names():
        for frame in generate_for(settings.structure(name), settings.initial_data, rng):
            frame.info.update(
                al_id=f"init-{len(frames):04d}", al_source="initial", al_iteration=-1,
                al_system=name,
            )  # fmt: skip
            frames.append(frame)
    return frames


def generate_for(atoms: Atoms, settings: InitialData, rng: np.random.Generator) -> list[Atoms]:
    """Rattled, strained copies of ``atoms`` and cheap MD snapshots (``initial_data`` settings)."""
    n_total = settings.n_frames
    n_md = round(settings.md_fraction * n_total)
    frames = []
    for i in range(n_total - n_md):
        # amplitudes from 0.5x to 1.5x the configured stdev for a spread of distortions
        stdev = settings.rattle_stdev * (0.5 + i / max(1, n_total - n_md - 1))
        frames.append(rattled(atoms, stdev, settings.strain, rng))
    if n_md:
        frames += md_snapshots(
            rattled(atoms, settings.rattle_stdev, 0.0, rng),
            n_md,
            settings.md_calculator,
            settings.md_temperature,
            settings.md_steps_between,
            rng,
        )
    return frames
