"""Every observable of one condition's MLIP MD, with intervals, against reference dynamics.

:func:`measure` takes the member-driven MLIP trajectories of a condition
(:mod:`almomd.observables.dynamics`), the reference dynamics (the labeler's MD;
none: values and model intervals only, no agreement claimed) and the harmonic
model of the ideal structure, and returns per observable (``rdf`` per element
pair, ``vdos``, ``msd``, ``diffusion`` per element, ``sigma_a``) the values,
intervals and verdicts (:mod:`almomd.observables.intervals`), and the curves
for the figures. Each trajectory is measured whole and in ``blocks`` blocks
(its statistical error) for the static observables (RDF, sigma^A). Time
correlations want long windows: the VDOS (Welch segments) and the MSD (its
longest lag; ``D`` fitted on its second half) use one window ``W`` for all
trajectories, half the shortest one, and each trajectory's two halves as its
blocks; the MSD's longest lag is half that window, so that even a half holds
many time origins at every lag. Longer trajectories then give smaller errors and finer spectra, not
other quantities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from almomd.data.trajectories import Trajectory
from almomd.observables import anharmonicity, structure, transport, vibrations
from almomd.observables.intervals import Estimate, compare_curve, compare_number, estimate

#: observables :func:`measure` gives a verdict on (``stability`` is judged by the MD itself)
MEASURED = ("rdf", "vdos", "msd", "diffusion", "sigma_a")
#: every observable of the verdict, in order (``convergence.observables`` names these)
OBSERVABLES = (*MEASURED, "stability")
#: RDF bins
RDF_BINS = 100
#: the RDF is averaged over at most this many states of a trajectory (or block)
RDF_STATES = 100
#: fewest states of a block
MIN_BLOCK = 8


def block_length(trajectories: Sequence[Trajectory], blocks: int) -> int:
    """The common block length: the shortest trajectory's length over ``blocks``."""
    return min(len(t) for t in trajectories) // blocks


def usable(trajectories: Sequence[Trajectory], blocks: int) -> list[Trajectory]:
    """The trajectories long enough for ``blocks`` blocks of ``MIN_BLOCK`` states."""
    return [t for t in trajectories if len(t) >= blocks * MIN_BLOCK]


class _Side:
    """One side of the comparison (MLIP or reference): per trajectory and per block."""

    def __init__(self, trajectories: Sequence[Trajectory], blocks: int, model: bool):
        self.whole = list(trajectories)
        self.blocks = [t.blocks(blocks) for t in self.whole]
        self.model = model

    def estimate(self, measure) -> tuple[Estimate, list[np.ndarray]]:
        per = [np.asarray(measure(t), float) for t in self.whole]
        per_block = [[np.asarray(measure(b), float) for b in bs] for bs in self.blocks]
        return estimate(per, per_block, self.model), per


def _curve(grid: np.ndarray, found: Estimate, reference: Estimate | None) -> dict[str, np.ndarray]:
    arrays = {"grid": grid, "value": found.value, "error": found.total}
    if reference is not None:
        arrays |= {"reference": reference.value, "reference_error": reference.stat}
    return arrays


def _last(found: Estimate) -> Estimate:
    """A curve's last point as a number (the MSD at the longest lag)."""
    model = None if found.model is None else found.model[-1]
    return Estimate(found.value[-1], found.stat[-1], model, found.n)


def _verdict(rows: dict[str, dict]) -> bool | None:
    """All of an observable's parts agree; one that disagrees decides; None: no verdict
    (no reference, or members too far apart)."""
    flags = [row["agree"] for row in rows.values()]
    if False in flags:
        return False
    if None in flags:
        return None
    return True


def measure(
    model: Sequence[Trajectory],
    reference: Sequence[Trajectory] | None,
    harmonic: anharmonicity.Harmonic | None,
    blocks: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The verdict per observable (JSON-ready) and the curves (arrays, for the figures)."""
    model = usable(model, blocks)
    reference = usable(reference, blocks) if reference else []
    if not model:
        raise ValueError(
            f"no MLIP trajectory is long enough for {blocks} blocks of "
            f"{MIN_BLOCK} states: raise observables.steps"
        )
    length = block_length([*model, *reference], blocks)
    ours = _Side(model, blocks, model=True)
    theirs = _Side(reference, blocks, model=False) if reference else None
    # time correlations want the longest window the trajectories allow: half the shortest,
    # each trajectory's two halves its blocks
    window = block_length([*model, *reference], 2)
    lags = window // 2  # the MSD's longest lag: many time origins in each half still
    ours_t = _Side(model, 2, model=True)
    theirs_t = _Side(reference, 2, model=False) if reference else None
    symbols = model[0].symbols
    elements = sorted(set(symbols))
    found: dict[str, dict[str, dict]] = {name: {} for name in MEASURED}
    curves: dict[str, np.ndarray] = {}

    def both(measure_one, timed=False):
        mine_side, other_side = (ours_t, theirs_t) if timed else (ours, theirs)
        mine, per = mine_side.estimate(measure_one)
        other = other_side.estimate(measure_one)[0] if other_side else None
        return mine, other, per

    r_max = 0.98 * structure.largest_radius(model[0].cells[0])
    for pair in structure.element_pairs(symbols):
        name = structure.pair_name(pair)

        def g(t, pair=pair):
            stride = max(1, len(t) // RDF_STATES)
            return structure.rdf(t, pair, r_max, RDF_BINS, stride)[1]

        r = structure.rdf(model[0].part(0, 1), pair, r_max, RDF_BINS)[0]
        mine, other, _ = both(g)
        if not (mine.value if other is None else other.value).any():
            # no such pair closer than r_max (a thin cell) in the reference: no shell to
            # compare (atoms the MLIP brings closer are stability's to catch)
            continue
        found["rdf"][name] = compare_curve(r, mine, other)
        curves |= {f"rdf/{name}/{k}": v for k, v in _curve(r, mine, other).items()}
    grid = vibrations.vdos(model[0].part(0, window), elements[0], window)[0]
    for element in elements:

        def spectrum(t, element=element):
            return vibrations.on_grid(*vibrations.vdos(t, element, window), grid)

        mine, other, _ = both(spectrum, timed=True)
        row = compare_curve(grid, mine, other)
        if other is not None:
            row["overlap"] = vibrations.overlap(mine.value, other.value, grid)
        found["vdos"][element] = row
        curves |= {f"vdos/{element}/{k}": v for k, v in _curve(grid, mine, other).items()}
        lag = transport.msd(model[0].part(0, lags), element, lags)[0]
        mine, other, _ = both(
            lambda t, element=element: transport.msd(t, element, lags)[1], timed=True
        )
        curves |= {f"msd/{element}/{k}": v for k, v in _curve(lag, mine, other).items()}
        found["msd"][element] = compare_number(_last(mine), _last(other) if other else None)
        moving = transport.diffuses(mine.value) or bool(other and transport.diffuses(other.value))
        if moving:
            d_mine, d_other, _ = both(
                lambda t, element=element: transport.diffusion(*transport.msd(t, element, lags)),
                timed=True,
            )
            found["diffusion"][element] = compare_number(d_mine, d_other) | {"unit": "A^2/ps"}
    if harmonic is not None:
        mine, other, _ = both(lambda t: anharmonicity.sigma_a(t, harmonic))
        found["sigma_a"]["all"] = compare_number(mine, other)
        for k, t in enumerate(ours.whole):
            curves[f"sigma_a/model/{k}"] = anharmonicity.sigma_a_series(t, harmonic)
        for k, t in enumerate(theirs.whole if theirs else []):
            curves[f"sigma_a/reference/{k}"] = anharmonicity.sigma_a_series(t, harmonic)
    verdict: dict[str, Any] = {}
    for name in MEASURED:
        rows = found[name]
        if name == "diffusion" and not rows:  # nothing diffuses, in either: nothing to miss
            verdict[name] = {
                "agree": None if theirs is None else True,
                "parts": {},
                "note": "no element diffuses",
            }
            continue
        if not rows:
            continue
        verdict[name] = {"agree": _verdict(rows), "parts": rows}
    verdict["_protocol"] = {
        "blocks": blocks,
        "block_states": length,
        "timestep_fs": model[0].timestep,
        "block_fs": length * model[0].timestep,
        "window_states": window,
        "window_fs": window * model[0].timestep,
        "msd_lag_fs": (lags - 1) * model[0].timestep,
        "model_trajectories": len(model),
        "reference_trajectories": len(reference),
        "rdf_r_max": r_max,
    }
    return verdict, curves
