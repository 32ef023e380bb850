"""Walkers that go on across iterations: where iteration i's walker starts.

With ``exploration.continue_walkers`` a walker of iteration i > 0 starts where
the same walker of iteration i-1 stopped: the positions, cell and momenta of
its last logged frame that passed every check (``md_trusted``), now on the new
ensemble. Exploration time then adds up over the iterations (``md_elapsed_fs``)
and reaches events that a short run from the ideal structure never meets (in
CuI at 600 K a Cu atom left its site after about 0.5 ps of MD; a walker of 0.6
ps that starts again every iteration rarely sees one). The previous walker must
be the same one: the same system, atoms and elements. Where it is not (the
config's walkers changed), or none of its frames passed the checks, the walker
starts afresh from the structure, and the log says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ase import Atoms

from almomd.data.frames import read_frames

log = logging.getLogger(__name__)


def last_trusted(frames: Sequence[Atoms]) -> Atoms | None:
    """The last frame that passed every check and kept its momenta (None if none did)."""
    for frame in reversed(frames):
        if frame.info.get("md_trusted") is True and "momenta" in frame.arrays:
            return frame
    return None


def continued_start(previous: Path | str, start: Atoms, system: str) -> tuple[Atoms | None, str]:
    """The frame of the previous iteration's walker file ``previous`` to go on from, if it
    fits the walker (``start``: its structure, ``system``: its system), and why (not).
    """
    frames = read_frames(previous)
    frame = last_trusted(frames)
    if frame is None:
        return None, f"{previous}: no frame passed every check (or an earlier version's)"
    if frame.info.get("al_system", system) != system:
        return None, f"{previous} is system {frame.info.get('al_system')}, not {system}"
    if frame.get_chemical_symbols() != start.get_chemical_symbols():
        return None, f"{previous} has other atoms than system {system}'s structure"
    return frame, (
        f"going on from {frame.info.get('al_id', previous)} "
        f"({frame.info.get('md_elapsed_fs', 0.0):g} fs of MD so far)"
    )
