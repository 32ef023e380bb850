"""ASE calculators for tests that need a labeler unlike EMT (used as module:Class): ones that
fail, for failure injection, and one with another zero of energy."""

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


class SilentlyUnconverged(EMT):
    """EMT that, like CP2K, reports an unconverged SCF only in its output file."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with open(f"{self.directory}/calc.out", "w") as handle:
            handle.write(" SCF run NOT converged\n ENERGY| Total FORCE_EVAL: -1.0\n")


class Verbose(EMT):
    """EMT that writes a large output file (to test compression)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with open(f"{self.directory}/big.out", "w") as handle:
            handle.write("x" * 300_000)


class NeedsDamping(EMT):
    """EMT that fails unless ``mixing`` is small, to test the fallback retry."""

    def __init__(self, mixing=0.7, **kwargs):
        super().__init__(**kwargs)
        self.mixing = mixing

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if self.mixing > 0.3:
            raise RuntimeError(f"charge sloshing with mixing {self.mixing}")
        super().calculate(atoms, properties, system_changes)


class Flaky(EMT):
    """EMT that fails on active frames in three ways, by MD step.

    Step // 5 modulo 4: 0 raises, 1 returns a NaN force, 2 reports non-convergence
    only in its output file, 3 succeeds. Initial frames always succeed.
    """

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        step = int(atoms.info.get("al_step", -1)) if atoms is not None else -1
        mode = (step // 5) % 4 if step >= 0 else 3
        if mode == 0:
            raise RuntimeError("SCF did not converge after 100 iterations")
        super().calculate(atoms, properties, system_changes)
        if mode == 1:
            self.results["forces"] = self.results["forces"].copy()
            self.results["forces"][0, 0] = np.nan
        if mode == 2:
            with open(f"{self.directory}/calc.out", "w") as handle:
                handle.write(" SCF run NOT converged\n")


class NoStress(EMT):
    """EMT that does not provide the stress."""

    implemented_properties = ["energy", "forces"]


class FailsAfter(EMT):
    """EMT that fails from its ``after``-th single point on, unless ``mixing`` is small
    (as the fallback sets): an SCF that stops converging on a hot MD step. The calls
    are counted per directory, so a fresh calculator there fails as well."""

    calls: dict[str, int] = {}

    def __init__(self, after=5, mixing=0.7, **kwargs):
        super().__init__(**kwargs)
        self.after, self.mixing = after, mixing

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        calls = self.calls[str(self.directory)] = self.calls.get(str(self.directory), 0) + 1
        if self.mixing > 0.3 and calls >= self.after:
            raise RuntimeError(f"SCF did not converge (call {calls})")
        super().calculate(atoms, properties, system_changes)


class FailsEveryThird(EMT):
    """EMT that raises on every third single point of the process (counted over all its
    instances: each frame gets a calculator of its own): a code that fails now and then."""

    calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        FailsEveryThird.calls += 1
        if FailsEveryThird.calls % 3 == 0:
            raise RuntimeError(f"SCF did not converge (call {FailsEveryThird.calls})")
        super().calculate(atoms, properties, system_changes)


class ShiftedEMT(EMT):
    """EMT with its zero of energy moved by ``SHIFT`` eV per atom (forces unchanged): a
    labeler whose energy reference differs from that of a model trained on plain EMT."""

    SHIFT = -2.0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        offset = self.SHIFT * len(self.atoms)
        for key in ("energy", "free_energy"):
            self.results[key] = self.results[key] + offset
        if "energies" in self.results:
            self.results["energies"] = self.results["energies"] + self.SHIFT
