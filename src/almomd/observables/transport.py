"""Transport: mean squared displacement and diffusion coefficient per element.

The MSD is freud's windowed estimator (``freud.msd.MSD``, all time origins,
by FFT) on the unwrapped positions the MD moved (the centre of mass is held
fixed by the thermostat's constraint). The diffusion coefficient is Einstein's,
``D = slope / 6`` of a straight line fitted to the MSD over the second half of
the lags used; it means something only where the MSD keeps growing (the atoms
diffuse), which :func:`diffuses` tells from the MSD itself.
"""

from __future__ import annotations

import numpy as np

from almomd.data.trajectories import Trajectory

#: A2/fs in A2/ps
A2_PER_PS = 1000.0
#: An element diffuses where its MSD grows by more than this factor over the second half
#: of the lags (a vibrating atom's MSD levels off: a factor near 1; free diffusion doubles it)
DIFFUSING_GROWTH = 1.3
#: ... and where its MSD at the lag exceeds this (A^2): beyond any vibration (an rms
#: displacement of 1 A is several times the Lindemann amplitude of a solid near melting)
DIFFUSING_MSD = 1.0


def msd(trajectory: Trajectory, element: str, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """MSD of ``element``'s atoms (A^2) at lags 0 .. ``lags`` - 1 states; returns the lags (fs)."""
    import freud

    mask = np.array(trajectory.symbols) == element
    positions = trajectory.positions[:, mask, :] - trajectory.positions[0, mask, :]  # precision
    estimator = freud.msd.MSD(mode="window")
    estimator.compute(positions.astype(np.float64))
    found = np.asarray(estimator.msd, float)[:lags]
    return np.arange(len(found)) * trajectory.timestep, found


def diffusion(lag: np.ndarray, values: np.ndarray) -> float:
    """Einstein's diffusion coefficient (A^2/ps) from the second half of the MSD curve."""
    half = len(lag) // 2
    if len(lag) - half < 2:
        return float("nan")
    slope = np.polyfit(lag[half:], values[half:], 1)[0]  # A^2/fs
    return float(slope / 6.0 * A2_PER_PS)


def diffuses(values: np.ndarray) -> bool:
    """Whether an MSD curve keeps growing (diffusion) rather than levelling off (vibration)."""
    half = len(values) // 2
    return bool(
        half > 0
        and values[half] > 0
        and values[-1] > DIFFUSING_MSD
        and values[-1] / values[half] > DIFFUSING_GROWTH
    )
