"""Fine-tuning from a model package: the per-type energy shifts re-referenced to the labeler.

A package predicts energies in the reference of the code it was trained on (a
foundation model: its DFT; another almomd campaign: its labeler). The labeler of
this campaign has another zero of energy, often hundreds of eV per atom away, so
a member fine-tuned as it is would spend its first epochs (and its energy loss)
fighting a constant offset per element. NequIP's energy is a sum over atoms of
``scale_t * e_i + shift_t``; shifting ``shift_t`` by ``delta_t`` moves a frame's
energy by ``sum_t n_t delta_t``. The ``delta`` that best explains the labels'
offset from the package's predictions, on the frames the member trains on, is a
least-squares problem over the frames' compositions (the minimum-norm solution
where the compositions do not tell the elements apart: a single stoichiometry
fixes only the composition-weighted sum, which is all its energies depend on).

Fitted, not isolated atoms, by default: the frames are labeled anyway, an isolated
atom in a periodic DFT code is a costly, spin-sensitive calculation of its own, and
the fit re-references whatever zero the package used. ``model.reference_energies``
(e.g. the labeler's isolated atoms) replaces the fit where a user knows the package
was trained with isolated-atom shifts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def package_shifts(model) -> dict[str, float]:
    """The per-type energy shifts (eV) of a loaded NequIP model, by type name."""
    for module in model.modules():
        if type(module).__name__ == "PerTypeScaleShift" and module.has_shifts:
            values = module.shifts.detach().cpu().reshape(-1).tolist()
            if len(values) == 1:
                values = values * len(module.type_names)
            return dict(zip(module.type_names, map(float, values), strict=True))
    return {}


def fitted_shifts(
    type_names: Sequence[str],
    counts: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    shifts: dict[str, float],
) -> dict[str, float]:
    """New shifts of the types present in the frames: ``shifts`` plus the least-squares
    ``delta`` of ``labels - predicted`` (eV per frame) over ``counts`` (frames x types)."""
    present = np.flatnonzero(counts.sum(axis=0) > 0)
    delta, *_ = np.linalg.lstsq(counts[:, present].astype(float), labels - predicted, rcond=None)
    return {
        type_names[t]: shifts.get(type_names[t], 0.0) + float(d)
        for t, d in zip(present, delta, strict=True)
    }


def reference_shifts(
    package: Path | str,
    frames: Sequence,
    given: dict[str, float] | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """The package's per-type shifts re-referenced to the labeled ``frames`` (ase.Atoms with
    energies): ``given`` (``model.reference_energies``) for the types it names, else fitted
    (module docstring). Logs the offset per atom before and after."""
    from nequip.integrations.ase import NequIPCalculator

    calc = NequIPCalculator._from_saved_model(
        str(package), device=device, chemical_species_to_atom_type_map=True
    )
    shifts = package_shifts(calc.model)
    type_names = list(shifts)
    counts = np.array(
        [[atoms.get_chemical_symbols().count(t) for t in type_names] for atoms in frames]
    )
    labels = np.array([atoms.get_potential_energy() for atoms in frames])
    predicted = []
    for atoms in frames:
        work = atoms.copy()
        work.calc = calc
        predicted.append(work.get_potential_energy())
    predicted = np.asarray(predicted)
    if given:
        new = {t: float(given[t]) for t in type_names if t in given}
    else:
        new = fitted_shifts(type_names, counts, labels, predicted, shifts)
    moved = counts @ np.array([new.get(t, shifts[t]) - shifts[t] for t in type_names])
    natoms = counts.sum(axis=1)
    log.info(
        "energy reference of %s: mean offset of the labels from its predictions %.4g eV/atom, "
        "%.4g after re-referencing (%s shifts: %s)",
        package, np.mean((labels - predicted) / natoms),
        np.mean((labels - predicted - moved) / natoms), "given" if given else "fitted",
        ", ".join(f"{t} {shifts[t]:.4g} -> {v:.4g}" for t, v in sorted(new.items())),
    )  # fmt: skip
    return new


def perturbed(model: dict, seed: int, perturbation: float):
    """The model that ``model`` (a NequIP model config: ``_target_`` and its arguments, e.g.
    ``ModelFromPackage``) builds, each weight tensor moved by Gaussian noise of
    ``perturbation`` times its own standard deviation (``seed``: the member's).

    Members fine-tuned from one package start from identical weights, and training on
    overlapping subsamples keeps them close: their spread then says little about their
    error. Moving each member's start a little ("shrink and perturb", Ash and Adams,
    NeurIPS 2020, without the shrink) lets them settle in different places while the
    package's knowledge stays. The per-type energy scales and shifts are left alone (their
    spread across elements is an energy reference, not a learned weight). Used as the
    ``_target_`` of a member's model block (``training.start_perturbation``); a
    checkpoint's weights replace the noise when the member is packaged.
    """
    import torch
    from hydra.utils import get_method

    config = dict(model)
    built = get_method(config.pop("_target_"))(**config)
    generator = torch.Generator().manual_seed(int(seed))
    referenced = {  # the energy shifts and scales (trainable in some packages) stay as set
        id(p)
        for module in built.modules()
        if type(module).__name__ == "PerTypeScaleShift"
        for p in module.parameters()
    }
    with torch.no_grad():
        for parameter in built.parameters():
            if (
                parameter.requires_grad
                and parameter.numel() > 1
                and id(parameter) not in referenced
            ):
                noise = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
                parameter.add_(perturbation * parameter.std() * noise.to(parameter.device))
    return built
