"""Vibrations: the vibrational density of states per element, from the velocities.

The VDOS is the power spectrum of the mass-weighted velocities (the Fourier
transform of their autocorrelation function, by the Wiener-Khinchin theorem),
estimated by Welch's method (``scipy.signal.welch``: averaged, windowed
periodograms of overlapping segments), summed over the element's atoms and
directions and normalised to unit area. Frequencies in THz.
"""

from __future__ import annotations

import numpy as np

from almomd.data.trajectories import Trajectory

#: THz per 1/fs
THZ_PER_INVERSE_FS = 1000.0


def vdos(trajectory: Trajectory, element: str, segment: int) -> tuple[np.ndarray, np.ndarray]:
    """The VDOS of ``element``'s atoms: frequencies (THz) and the normalised spectrum.

    ``segment``: the states per Welch segment (its frequency resolution is
    1 / (segment * timestep)); at most the trajectory's length.
    """
    from scipy.signal import welch

    mask = np.array(trajectory.symbols) == element
    velocities = trajectory.velocities[:, mask, :] * np.sqrt(trajectory.masses[mask])[:, None]
    segment = min(segment, len(trajectory))
    frequency, power = welch(
        velocities,
        fs=1.0 / trajectory.timestep,
        nperseg=segment,
        axis=0,
        detrend="constant",
        scaling="density",
    )
    spectrum = power.reshape(len(frequency), -1).sum(axis=1)
    frequency = frequency * THZ_PER_INVERSE_FS
    area = np.trapezoid(spectrum, frequency)
    return frequency, spectrum / area if area > 0 else spectrum


def on_grid(frequency: np.ndarray, spectrum: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``spectrum`` on the frequencies ``grid`` (linear interpolation, zero beyond its range),
    normalised to unit area there."""
    found = np.interp(grid, frequency, spectrum, right=0.0)
    area = np.trapezoid(found, grid)
    return found / area if area > 0 else found


def overlap(first: np.ndarray, second: np.ndarray, grid: np.ndarray) -> float:
    """The overlap of two normalised spectra on ``grid``: 1 when equal, 0 when disjoint."""
    return float(np.trapezoid(np.minimum(first, second), grid))
