"""Structure: the radial distribution function per element pair (freud's estimator).

freud (``freud.density.RDF``) is a maintained, compiled estimator of the RDF
in periodic boxes of any shape; frames are handed to it in fractional
coordinates, so that its box (upper-triangular, its own orientation) and the
cell agree whatever the cell's orientation.
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import numpy as np

from almomd.data.trajectories import Trajectory


def element_pairs(symbols: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair of the elements in ``symbols`` (alphabetical), like pairs too."""
    return list(combinations_with_replacement(sorted(set(symbols)), 2))


def pair_name(pair: tuple[str, str]) -> str:
    return "-".join(pair)


def largest_radius(cell: np.ndarray) -> float:
    """Half the cell's smallest width: the largest radius an RDF of the cell can reach."""
    cell = np.asarray(cell, float)
    volume = abs(np.linalg.det(cell))
    widths = [
        volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)
    ]
    return 0.5 * min(widths)


def rdf(
    trajectory: Trajectory, pair: tuple[str, str], r_max: float, bins: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """g(r) of ``pair`` averaged over the trajectory's states (every ``stride``-th).

    The partial g_AB: around each atom of the first element, the density of the
    second element's atoms at distance r relative to its mean density
    (an atom is not its own neighbour). Returns the bins' centres (A) and g.
    """
    import freud

    symbols = np.array(trajectory.symbols)
    first, second = (symbols == pair[0]), (symbols == pair[1])
    estimator = freud.density.RDF(bins=bins, r_max=r_max)
    query = {"exclude_ii": True} if pair[0] == pair[1] else {"r_max": r_max}
    for index in range(0, len(trajectory), stride):
        cell = trajectory.cells[index]
        box = freud.box.Box.from_matrix(cell.T)
        fractional = np.linalg.solve(cell.T, trajectory.positions[index].T).T % 1.0
        points = box.make_absolute(fractional).astype(np.float32)
        options = dict(query)
        if pair[0] == pair[1]:
            options["r_max"] = r_max
        estimator.compute(
            system=(box, points[second]), query_points=points[first], neighbors=options, reset=False
        )
    return np.asarray(estimator.bin_centers, float), np.asarray(estimator.rdf, float)
