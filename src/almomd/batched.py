"""All ensemble members in one pass: stacked weights, ``torch.func.vmap``, one backward.

Evaluating an ensemble member by member (ALmoMD's way) costs M forward and M
backward passes of a small model, dominated on CPU by per-operation overhead.
Here the members' parameters are stacked along a new leading axis and one
functional copy of the energy model is mapped over them with ``vmap``: every
operation runs once for all members. Each member sees its own copy of the
positions (and of a strain ``epsilon`` for the stress), so one
``torch.autograd.grad`` of the summed energies gives every member's forces
``-dE_m/dr`` and stress ``(1/V) dE_m/d epsilon``.

NequIP's scatter writes into a fresh tensor in place, which ``vmap`` cannot
batch; :func:`_scatter` is an out-of-place equivalent patched into the loaded
models' modules. Packaged models (``.nequip.zip``) work; compiled ones
(``.nequip.pt2``) cannot be mapped and are evaluated member by member.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch.func import functional_call, vmap


def _scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
    """Out-of-place sum scatter with the signature of ``nequip.nn.utils.scatter``."""
    assert reduce == "sum"
    if dim < 0:
        dim = src.dim() + dim
    if index.dim() == 1:
        index = index.view([1] * dim + [-1] + [1] * (src.dim() - dim - 1))
    index = index.expand_as(src)
    if out is None:
        size = list(src.size())
        size[dim] = dim_size if dim_size is not None else int(index.max()) + 1
        out = torch.zeros(size, dtype=src.dtype, device=src.device)
    return out.scatter_add(dim, index, src.to(out.dtype))


def _patch_scatter(model: torch.nn.Module) -> None:
    """Point every module of ``model`` that uses NequIP's scatter at :func:`_scatter`."""
    for module in model.modules():
        namespace = type(module).forward.__globals__
        if "scatter" in namespace and namespace["scatter"] is not _scatter:
            namespace["scatter"] = _scatter


def _energy_model(model: torch.nn.Module) -> torch.nn.Module:
    """The energy model inside NequIP's force/stress wrapper."""
    for module in model.modules():
        if type(module).__name__ == "ForceStressOutput":
            return module.func
    raise ValueError("not a NequIP energy model with a ForceStressOutput wrapper")


def _stack(named: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([n[key].detach() for n in named]) for key in named[0]}


class BatchedMembers:
    """Energies, forces and stresses of every member from one mapped pass."""

    def __init__(self, models: Sequence[torch.nn.Module]):
        from nequip.data import AtomicDataDict

        self._keys = AtomicDataDict
        energy_models = [_energy_model(m) for m in models]
        for model in models:
            _patch_scatter(model)
        names = [dict(m.named_parameters()) for m in energy_models]
        if any(n.keys() != names[0].keys() for n in names):
            raise ValueError("ensemble members differ in architecture; cannot batch them")
        self.params = _stack(names)
        self.buffers = _stack([dict(m.named_buffers()) for m in energy_models])
        self._base = copy.deepcopy(energy_models[0])
        self.n_members = len(models)
        self._mapped = vmap(self._member_energy, in_dims=(0, 0, 0, 0, None))

    def _member_energy(self, params, buffers, positions, strain, data):
        keys = self._keys
        data = dict(data)
        symmetric = 0.5 * (strain + strain.transpose(-1, -2))
        data[keys.POSITIONS_KEY] = positions + positions @ symmetric
        if keys.CELL_KEY in data:
            cell = data[keys.CELL_KEY]
            data[keys.CELL_KEY] = cell + cell @ symmetric
        out = functional_call(self._base, (params, buffers), (data,))
        return out[keys.TOTAL_ENERGY_KEY].sum()

    def __call__(self, data: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return energies ``(M,)``, forces ``(M, N, 3)`` and stresses ``(M, 3, 3)``.

        Stresses are ``None`` without a cell; units are the models' own.
        """
        keys = self._keys
        positions = data[keys.POSITIONS_KEY].detach()
        m = self.n_members
        replicas = positions.unsqueeze(0).expand(m, -1, -1).clone().requires_grad_(True)
        strain = torch.zeros((m, 3, 3), dtype=positions.dtype, device=positions.device)
        strain.requires_grad_(True)
        shared = {k: v for k, v in data.items() if k != keys.POSITIONS_KEY}
        energies = self._mapped(self.params, self.buffers, replicas, strain, shared)
        d_positions, d_strain = torch.autograd.grad(energies.sum(), (replicas, strain))
        stress = None
        if keys.CELL_KEY in data:
            volume = torch.linalg.det(data[keys.CELL_KEY].reshape(3, 3)).abs()
            stress = d_strain / volume
        return energies.detach(), -d_positions, stress
