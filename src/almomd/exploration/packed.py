"""Several walkers in one process and one pass: their graphs batched with the members.

Each walker runs exactly as alone (:func:`almomd.exploration.md.run_walker`:
its own thermostat, random numbers, bias, stopping checks and restarts), in a
thread of its own, on a :class:`WalkerSeat`: a calculator that hands the
walker's structure to the shared :class:`Lockstep` and waits. When every
walker still running has handed in its structure, one pass of the ensemble
over all of them (:meth:`almomd.ensemble.calculator.EnsembleCalculator.results_for`,
their graphs batched) gives each its results. A walker that stops leaves the
lockstep, and the others go on without waiting for it. Every walker depends
only on its own structure and random numbers, so its trajectory is the one it
has alone (up to the floating-point order of a batched sum).

The threads only wait on one another; the pass itself runs in the thread
that completes the batch, while the others sleep (PyTorch uses its own
threads inside the pass).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from almomd.ensemble.calculator import EnsembleCalculator


class Lockstep:
    """Collects the walkers' structures and evaluates them in one pass when all are in."""

    def __init__(self, ensemble: EnsembleCalculator, n_walkers: int):
        self.ensemble = ensemble
        self.running = n_walkers
        self._ready = threading.Condition()
        self._waiting: dict[int, Atoms] = {}
        self._done: dict[int, dict[str, Any] | BaseException] = {}

    def evaluate(self, walker: int, atoms: Atoms) -> dict[str, Any]:
        """The ensemble's results for ``atoms`` of ``walker``, from the next shared pass."""
        with self._ready:
            self._waiting[walker] = atoms.copy()
            self._run_if_complete()
            while walker not in self._done:
                self._ready.wait()
            found = self._done.pop(walker)
        if isinstance(found, BaseException):
            raise found
        return found

    def leave(self) -> None:
        """A walker has stopped: the pass no longer waits for it."""
        with self._ready:
            self.running -= 1
            self._run_if_complete()

    def _run_if_complete(self) -> None:
        if not self._waiting or len(self._waiting) < self.running:
            return
        walkers, structures = zip(*sorted(self._waiting.items()), strict=True)
        self._waiting.clear()
        try:
            found: Sequence[dict[str, Any] | BaseException] = self.ensemble.results_for(structures)
        except Exception as error:  # every walker of the pass sees it
            found = [error] * len(walkers)
        self._done.update(zip(walkers, found, strict=True))
        self._ready.notify_all()


class WalkerSeat(Calculator):
    """One walker's calculator: its structure goes through the shared :class:`Lockstep`."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, lockstep: Lockstep, walker: int, **kwargs):
        super().__init__(**kwargs)
        self.lockstep = lockstep
        self.walker = walker

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        self.results = self.lockstep.evaluate(self.walker, self.atoms)


def run_together(
    ensemble: EnsembleCalculator, walks: Sequence[Callable[[Calculator], Any]]
) -> list[Any]:
    """Run ``walks`` (each a walker's run, given its calculator) side by side in one pass.

    Returns what each returned, in order; the first error of any walker is
    raised once all have ended.
    """
    lockstep = Lockstep(ensemble, len(walks))
    found: list[Any] = [None] * len(walks)

    def run(index: int) -> None:
        try:
            found[index] = walks[index](WalkerSeat(lockstep, index))
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the caller
            found[index] = error
        finally:
            lockstep.leave()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(walks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in found:
        if isinstance(result, BaseException):
            raise result
    return found
