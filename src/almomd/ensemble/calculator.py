"""One ASE calculator for all ensemble members: mean predictions and their uncertainty."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from almomd.ensemble.novelty import NoveltyReference, pooled_features
from almomd.ensemble.uncertainty import uncertainties


class Pass(NamedTuple):
    """Every member's predictions for ``G`` structures of ``N`` atoms in all (model units)."""

    energies: np.ndarray  # (M, G)
    forces: np.ndarray  # (M, N, 3)
    stress: np.ndarray | None  # (M, G, 3, 3)
    features: Any  # (M, N, F), one (N, F_m) per member (mixed widths), or None (compiled)


def _load_member(path: Path, device: str):
    """Load one packaged (``.nequip.zip``) or compiled (``.nequip.pt2``) model."""
    from nequip.integrations.ase import NequIPCalculator

    if path.name.endswith(".pt2"):
        return NequIPCalculator.from_compiled_model(
            str(path), device=device, chemical_species_to_atom_type_map=True
        )
    return NequIPCalculator._from_saved_model(
        str(path), device=device, chemical_species_to_atom_type_map=True
    )


class EnsembleCalculator(Calculator):
    """ASE calculator returning the ensemble mean and every member's prediction.

    The input graph (type mapping and neighbour list) is built once per call.
    With ``batched`` (the default for packaged models) all members run in one
    mapped pass on a shared edge geometry (:mod:`almomd.ensemble.batched`), compiled by
    ``torch.compile`` with ``compile``; otherwise, and for members that differ
    in architecture or are compiled ``.nequip.pt2`` files, member by member on
    that graph. ``results`` holds the mean ``energy``,
    ``forces`` and ``stress`` plus ``member_energies`` ``(M,)``,
    ``member_forces`` ``(M, N, 3)`` and the :func:`uncertainties` under
    ``uncertainty``. Where the members give their node features (packaged, not
    compiled), ``descriptor``: the frame's pooled features
    (:func:`~almomd.ensemble.novelty.pooled_features`). With a ``novelty``
    reference (:class:`~almomd.ensemble.novelty.NoveltyReference` or its file)
    also the per-atom ``novelty`` ``(N,)``, from the members' node features of
    the same pass, and the novelty metrics among the uncertainties.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model_paths: Sequence[Path | str],
        device: str = "cpu",
        batched: bool = True,
        compile: bool = False,
        novelty: NoveltyReference | Path | str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not model_paths:
            raise ValueError("an ensemble needs at least one model")
        if novelty is not None and not isinstance(novelty, NoveltyReference):
            novelty = NoveltyReference.load(novelty)
        self.novelty = novelty
        self.members = [_load_member(Path(p), device) for p in model_paths]
        first = self.members[0]
        self._to_data = first.atoms_to_data
        self._energy_factor = first.energy_units_to_eV
        self._force_factor = first.energy_units_to_eV / first.length_units_to_A
        self._stress_factor = first.energy_units_to_eV / first.length_units_to_A**3
        compiled = any(str(p).endswith(".pt2") for p in model_paths)
        self._batched = None
        if batched and not compiled:
            from almomd.ensemble.batched import BatchedMembers

            try:
                r_max = next((t.r_max for t in first.transforms if hasattr(t, "r_max")), None)
                self._batched = BatchedMembers(
                    [member.model for member in self.members], compile=compile, r_max=r_max
                )
            except ValueError as error:
                warnings.warn(f"{error}; evaluating the members one by one", stacklevel=2)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def batched(self) -> bool:
        """Whether the members run in one mapped pass."""
        return self._batched is not None

    def _one_by_one(self, data) -> Pass:
        from nequip.data import AtomicDataDict

        energies, forces, stresses, features = [], [], [], []
        for member in self.members:
            out = member.call_model(dict(data))
            energies.append(out[AtomicDataDict.TOTAL_ENERGY_KEY].detach().cpu().numpy())
            forces.append(out[AtomicDataDict.FORCE_KEY].detach().cpu().numpy())
            if AtomicDataDict.STRESS_KEY in out:
                stresses.append(out[AtomicDataDict.STRESS_KEY].detach().cpu().numpy())
            if AtomicDataDict.NODE_FEATURES_KEY in out:  # compiled members do not give them
                features.append(out[AtomicDataDict.NODE_FEATURES_KEY].detach().cpu().numpy())
        energies = np.stack([e.reshape(-1) for e in energies])
        stress = np.stack([s.reshape(-1, 3, 3) for s in stresses]) if stresses else None
        if len(features) < len(self.members):
            found = None
        elif len({f.shape for f in features}) > 1:  # a mixed committee: members' own widths
            found = features
        else:
            found = np.stack(features)
        return Pass(energies, np.stack(forces), stress, found)

    def features(self, atoms: Atoms) -> Any:
        """The members' last node features of ``atoms``: ``(M, N, F)``, or one
        ``(N, F_m)`` array per member where their widths differ (a mixed committee)."""
        return self._pass(self._to_data(atoms)).features

    def _pass(self, data) -> Pass:
        """One pass of every member over ``data`` (one or several batched structures)."""
        if self._batched is None:
            return self._one_by_one(data)
        energies, forces, stress, features = self._batched(data)
        return Pass(
            energies.cpu().numpy(),
            forces.detach().cpu().numpy(),
            None if stress is None else stress.detach().cpu().numpy(),
            features.cpu().numpy(),
        )

    def results_for(self, structures: Sequence[Atoms]) -> list[dict[str, Any]]:
        """The ``results`` of each of ``structures``, all from one pass of every member
        (their graphs batched: walkers in one pass)."""
        from nequip.data import AtomicDataDict

        graphs = [self._to_data(atoms) for atoms in structures]
        data = graphs[0] if len(graphs) == 1 else AtomicDataDict.batched_from_list(graphs)
        found = self._pass(data)
        results, start = [], 0
        for g, atoms in enumerate(structures):
            rows = slice(start, start + len(atoms))
            start += len(atoms)
            features = found.features
            if isinstance(features, list):  # a mixed committee: one array per member
                features = [f[rows] for f in features]
            elif features is not None:
                features = features[:, rows]
            stress = None if found.stress is None else found.stress[:, g]
            results.append(
                self._results(atoms, found.energies[:, g], found.forces[:, rows], stress, features)
            )
        return results

    def _results(self, atoms: Atoms, energies, forces, stresses, features) -> dict[str, Any]:
        """One structure's results from its members' energies ``(M,)``, forces ``(M, N, 3)``,
        stresses ``(M, 3, 3)`` or None and node features."""
        from ase.stress import full_3x3_to_voigt_6_stress

        member_energies = energies.astype(float) * self._energy_factor
        member_forces = forces.astype(float) * self._force_factor
        symbols = atoms.get_chemical_symbols()
        novelty = None
        if self.novelty is not None:
            if features is None:
                raise ValueError(
                    "compiled members (.nequip.pt2) give no node features, so no novelty: "
                    "use the packaged members (training.compile: false) with a novelty metric"
                )
            novelty = self.novelty.novelty(features, symbols)
        results = {
            "energy": float(member_energies.mean()),
            "free_energy": float(member_energies.mean()),
            "forces": member_forces.mean(axis=0),
            "member_energies": member_energies,
            "member_forces": member_forces,
            "uncertainty": uncertainties(
                member_energies,
                member_forces,
                novelty,
                None if self.novelty is None else self.novelty.error_model,
            ),
        }
        if novelty is not None:
            results["novelty"] = novelty
        if features is not None:
            results["descriptor"] = pooled_features(features, symbols)
        if stresses is not None and atoms.cell.rank == 3:
            voigt = [full_3x3_to_voigt_6_stress(s.reshape(3, 3)) for s in stresses]
            results["stress"] = np.mean(voigt, axis=0) * self._stress_factor
        return results

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        self.results = self.results_for([self.atoms])[0]


def predict(
    calculator: EnsembleCalculator, atoms: Atoms
) -> tuple[float, np.ndarray, dict[str, float]]:
    """Return the ensemble mean energy, mean forces and uncertainties of ``atoms``."""
    work = atoms.copy()
    work.calc = calculator
    work.get_potential_energy()
    results = calculator.results
    return results["energy"], results["forces"].copy(), dict(results["uncertainty"])
