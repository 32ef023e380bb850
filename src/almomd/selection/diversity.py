"""Spread over the selected frames: no two chosen frames too alike."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from ase import Atoms
from ase.geometry import find_mic

from almomd.settings.sections import Selection


def frame_distance(a: Atoms, b: Atoms) -> float:
    """RMS displacement (minimum image, Angstrom) between two frames of one system.

    The mean displacement (a drift of the whole cell) is removed. Frames with
    different atoms are infinitely far apart.
    """
    if len(a) != len(b) or a.get_chemical_symbols() != b.get_chemical_symbols():
        return math.inf
    displacement = b.get_positions() - a.get_positions()
    if any(a.pbc):
        displacement, _ = find_mic(displacement, a.get_cell(), a.get_pbc())
    displacement -= displacement.mean(axis=0)
    return float(np.sqrt((displacement**2).sum(axis=1).mean()))


def spread(
    frames: Sequence[Atoms],
    table: pd.DataFrame,
    candidates: np.ndarray,
    rule: Selection,
    chosen: Sequence[int] = (),
) -> tuple[list[int], dict[int, str]]:
    """Pick ``candidates``, most uncertain first, spread over walkers, time and space.

    Walkers take turns where ``rule.fair_share``; a candidate is passed over when
    it is within ``rule.min_time_separation`` of a kept frame of its walker or
    within ``rule.min_frame_distance`` of any kept frame. At most
    ``rule.max_frames`` are kept, counting the frames already ``chosen`` (which
    the new ones keep their distance from too). Returns the newly kept indices
    and, for every candidate passed over, why (``too_correlated``,
    ``too_similar`` or ``over_cap``).
    """
    u = table["uncertainty"].to_numpy()
    walker = table["walker"].to_numpy()
    time_fs = table["time_fs"].to_numpy()
    queues: dict[int, list[int]] = {}
    for i in sorted(candidates.tolist(), key=lambda i: -u[i]):
        queues.setdefault(int(walker[i]) if rule.fair_share else 0, []).append(i)
    kept: list[int] = list(chosen)
    passed: dict[int, str] = {}

    def conflict(i: int) -> str | None:
        for j in kept:
            if walker[j] == walker[i] and abs(time_fs[j] - time_fs[i]) < rule.min_time_separation:
                return "too_correlated"
        for j in kept:
            if frame_distance(frames[j], frames[i]) < rule.min_frame_distance:
                return "too_similar"
        return None

    while queues and len(kept) < rule.max_frames:
        for key in sorted(queues, key=lambda k: -u[queues[k][0]]):
            queue = queues[key]
            while queue and len(kept) < rule.max_frames:
                i = queue.pop(0)
                reason = conflict(i)
                if reason is None:
                    kept.append(i)
                    break
                passed[i] = reason
        queues = {k: q for k, q in queues.items() if q}
    for queue in queues.values():
        passed.update(dict.fromkeys(queue, "over_cap"))
    return kept[len(chosen) :], passed
