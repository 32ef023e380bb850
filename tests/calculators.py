"""Misbehaving ASE calculators for failure-injection tests (used as module:Class)."""

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT


class Raising(Calculator):
    """Fails every single point, like an SCF that does not converge."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise RuntimeError("SCF did not converge after 100 iterations")


class NaNForces(EMT):
    """EMT with a NaN force on the first atom."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"].copy()
        self.results["forces"][0, 0] = np.nan


class FailOddFrames(EMT):
    """EMT that fails on frames whose info has an odd ``al_step``."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is not None and atoms.info.get("al_step", 0) % 2:
            raise ValueError("odd frame refused")
        super().calculate(atoms, properties, system_changes)


class Counting(EMT):
    """EMT that counts single points in a file (to prove a resume recomputes nothing)."""

    def __init__(self, counter_file, **kwargs):
        super().__init__(**kwargs)
        self.counter_file = counter_file

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        with open(self.counter_file, "a") as handle:
            handle.write(f"{atoms.info.get('al_id')}\n")
        super().calculate(atoms, properties, system_changes)
