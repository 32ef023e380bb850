"""Spread over the selected frames: no two chosen frames too alike.

Two ways (``selection.diversity``): ``time`` takes the most uncertain frames
first, walkers taking turns, passing over frames too close in MD time or in
positions to one already kept (:func:`spread`); ``features`` picks greedily the
frame farthest, in the members' feature space (each frame's pooled node
features, ``ens_descriptor``), from those already kept, starting from the most
uncertain, under the same time and position rules (:func:`farthest_point`):
a batch that covers what the candidates hold instead of several frames of one
kind (batch-mode active learning by farthest-point sampling in a network's
features). Frames of different systems are never compared: each system's
first pick is its most uncertain frame.
"""

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


def _conflict(
    frames: Sequence[Atoms], table: pd.DataFrame, kept: Sequence[int], i: int, rule: Selection
) -> str | None:
    """Why frame ``i`` may not join ``kept``: ``too_correlated``, ``too_similar`` or None."""
    walker = table["walker"].to_numpy()
    time_fs = table["time_fs"].to_numpy()
    for j in kept:
        if walker[j] == walker[i] and abs(time_fs[j] - time_fs[i]) < rule.min_time_separation:
            return "too_correlated"
    for j in kept:
        if frame_distance(frames[j], frames[i]) < rule.min_frame_distance:
            return "too_similar"
    return None


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
    queues: dict[int, list[int]] = {}
    for i in sorted(candidates.tolist(), key=lambda i: -u[i]):
        queues.setdefault(int(walker[i]) if rule.fair_share else 0, []).append(i)
    kept: list[int] = list(chosen)
    passed: dict[int, str] = {}
    while queues and len(kept) < rule.max_frames:
        for key in sorted(queues, key=lambda k: -u[queues[k][0]]):
            queue = queues[key]
            while queue and len(kept) < rule.max_frames:
                i = queue.pop(0)
                reason = _conflict(frames, table, kept, i, rule)
                if reason is None:
                    kept.append(i)
                    break
                passed[i] = reason
        queues = {k: q for k, q in queues.items() if q}
    for queue in queues.values():
        passed.update(dict.fromkeys(queue, "over_cap"))
    return kept[len(chosen) :], passed


def descriptors(frames: Sequence[Atoms]) -> np.ndarray:
    """The frames' pooled features ``(n, D)`` (``ens_descriptor``, written by exploration)."""
    missing = [i for i, a in enumerate(frames) if "ens_descriptor" not in a.info]
    if missing:
        raise ValueError(
            f"selection.diversity features: {len(missing)} explored frames have no "
            "ens_descriptor (members that give no node features, or walkers of an earlier "
            "version); use training.compile: false, or selection.diversity: time"
        )
    return np.array([np.asarray(a.info["ens_descriptor"], dtype=float) for a in frames])


def farthest_point(
    frames: Sequence[Atoms],
    table: pd.DataFrame,
    candidates: np.ndarray,
    rule: Selection,
    chosen: Sequence[int] = (),
) -> tuple[list[int], dict[int, str]]:
    """Pick ``candidates`` greedily farthest from the kept frames in feature space.

    The first pick (where nothing is ``chosen`` yet in a system) is the most
    uncertain candidate; every next one the candidate whose nearest kept frame
    (of its system) is farthest, ties to the more uncertain. Candidates too close
    in time or positions to a kept frame are passed over as in :func:`spread`.
    Returns the newly kept indices and, for each candidate passed over, why.
    """
    u = table["uncertainty"].to_numpy()
    system = table["system"].to_numpy()
    features = descriptors(frames)
    pool = sorted(candidates.tolist(), key=lambda i: -u[i])
    kept: list[int] = []
    passed: dict[int, str] = {}
    nearest = np.full(len(frames), np.inf)  # distance to the nearest kept frame of the system

    def keep(i: int) -> None:
        kept.append(i)
        same = system == system[i]
        distance = np.linalg.norm(features - features[i], axis=1)
        nearest[same] = np.minimum(nearest[same], distance[same])

    for i in chosen:
        keep(i)
    while pool and len(kept) < rule.max_frames:
        best = max(pool, key=lambda i: (nearest[i], u[i]))
        pool.remove(best)
        reason = _conflict(frames, table, kept, best, rule)
        if reason is None:
            keep(best)
        else:
            passed[best] = reason
    passed.update(dict.fromkeys(pool, "over_cap"))
    return kept[len(chosen) :], passed
