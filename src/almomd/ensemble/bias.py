"""Uncertainty-driven exploration: a bias that pushes walkers toward ensemble disagreement.

The bias energy is a bounded function of the variance of the members' energies
(the uncertainty-driven dynamics of Kulichenko et al., J. Phys. Chem. Lett. 12,
6227 (2021); ALmoMD's ``NVTLangevin_bias`` with ``bias_A`` and ``bias_B``)::

    E_bias = A * (exp(-s2 / (N * B**2)) - 1),   s2 = mean_m (E_m - mean E)**2

with strength ``A`` (eV, >= 0), width ``B`` (eV per sqrt(atom)) and ``N`` atoms.
It is 0 where the members agree and tends to ``-A`` where they disagree much
more than ``B * sqrt(N)``, so a walker is drawn toward disagreement without
running away. Its force needs no extra pass through the models: with member
forces ``F_m = -dE_m/dx`` (all from the ensemble's one backward pass),

    F_bias = -(2 A / (M N B**2)) exp(-s2 / (N B**2)) sum_m (E_m - mean E) (F_m - mean F)

A fixed ``B`` suits one ensemble at one stage: members that agree better
after a few iterations never reach a fixed width and the bias vanishes, and
members that disagree much more than ``B`` saturate it (it is flat again).
``width: auto`` sets ``B`` from the ensemble's own energy spread instead:
for its first ``warmup_steps`` force calls a walker runs unbiased and records
``sqrt(s2 / N)``; ``B`` is then ``width_factor`` times its root mean square, so
the bias pulls a walker toward disagreement ``width_factor`` times what the
ensemble shows at the walker's conditions, whatever the iteration.

Frames are labeled with the unbiased reference; the bias energy and width are
recorded per frame (``md_bias_energy``, ``md_bias_width``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

log = logging.getLogger(__name__)


#: Force calls a walker runs unbiased to measure the ensemble's spread (``width: auto``).
WARMUP_STEPS = 20
#: ``B`` over the measured spread (``width: auto``).
WIDTH_FACTOR = 2.0


def energy_spread(member_energies: np.ndarray, n_atoms: int) -> float:
    """The members' energy spread ``sqrt(s2 / N)`` (eV per sqrt(atom))."""
    energies = np.asarray(member_energies, dtype=float)
    return float(np.sqrt(np.mean((energies - energies.mean()) ** 2) / n_atoms))


@dataclass(frozen=True)
class UncertaintyBias:
    """The bias's strength ``A`` (eV) and width ``B`` (eV per sqrt(atom)).

    ``width`` ``None`` (``auto`` in the config) measures ``B`` on the walker:
    ``width_factor`` times the energy spread of its first ``warmup_steps`` calls.
    """

    strength: float
    width: float | None
    width_factor: float = WIDTH_FACTOR
    warmup_steps: int = WARMUP_STEPS

    def __post_init__(self) -> None:
        if self.strength < 0 or (self.width is not None and self.width <= 0):
            raise ValueError(
                f"bias strength must be >= 0 and width > 0 (got {self.strength}, {self.width})"
            )
        if self.width_factor <= 0 or self.warmup_steps < 1:
            raise ValueError(
                f"bias width_factor must be > 0 and warmup_steps >= 1 (got "
                f"{self.width_factor}, {self.warmup_steps})"
            )

    @classmethod
    def from_settings(cls, settings: dict) -> UncertaintyBias:
        """From the config's ``exploration.bias`` (``width: auto`` measures it)."""
        width = settings["width"]
        return cls(
            strength=settings["strength"],
            width=None if width == "auto" else float(width),
            width_factor=settings.get("width_factor", WIDTH_FACTOR),
            warmup_steps=settings.get("warmup_steps", WARMUP_STEPS),
        )

    def energy_and_forces(
        self, member_energies: np.ndarray, member_forces: np.ndarray, width: float | None = None
    ) -> tuple[float, np.ndarray]:
        """The bias energy (eV) and forces ``(N, 3)`` from members' energies and forces,
        with ``width`` (the measured one) where the bias has none of its own."""
        width = self.width if width is None else width
        if width is None:
            raise ValueError("an automatic bias width is measured first (BiasedEnsemble)")
        energies = np.asarray(member_energies, dtype=float)
        forces = np.asarray(member_forces, dtype=float)
        n_members, n_atoms = forces.shape[:2]
        deviation = energies - energies.mean()
        scale = n_atoms * width**2
        decay = np.exp(-np.mean(deviation**2) / scale)
        energy = self.strength * (decay - 1.0)
        spread = np.einsum("m,mij->ij", deviation, forces - forces.mean(axis=0))
        bias_forces = -2.0 * self.strength * decay / (n_members * scale) * spread
        return float(energy), bias_forces


class BiasedEnsemble(Calculator):
    """An ensemble calculator whose energy and forces include :class:`UncertaintyBias`.

    Member predictions and uncertainties are the ensemble's own (unbiased);
    ``bias_energy``, ``bias_forces`` and ``bias_width`` (nan while an automatic
    width is still being measured, the bias off) are added to the results.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, ensemble: Calculator, bias: UncertaintyBias, **kwargs):
        super().__init__(**kwargs)
        self.ensemble = ensemble
        self.bias = bias
        self.width = bias.width
        self._spreads: list[float] = []

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        self.ensemble.calculate(self.atoms, properties, system_changes)
        results = dict(self.ensemble.results)
        if self.width is None:  # still measuring the ensemble's spread: unbiased
            self._spreads.append(energy_spread(results["member_energies"], len(self.atoms)))
            energy, forces = 0.0, np.zeros_like(results["forces"])
            if len(self._spreads) >= self.bias.warmup_steps:
                measured = float(np.sqrt(np.mean(np.square(self._spreads))))
                self.width = max(self.bias.width_factor * measured, 1e-12)
                log.info(
                    "bias width %.3g eV per sqrt(atom): %g x the energy spread of %d steps",
                    self.width, self.bias.width_factor, len(self._spreads),
                )  # fmt: skip
        else:
            energy, forces = self.bias.energy_and_forces(
                results["member_energies"], results["member_forces"], self.width
            )
        results.update(
            energy=results["energy"] + energy,
            free_energy=results["energy"] + energy,
            forces=results["forces"] + forces,
            bias_energy=energy,
            bias_forces=forces,
            bias_width=math.nan if self.width is None else self.width,
        )
        self.results = results
