"""All ensemble members in one pass: shared geometry, stacked weights, ``vmap``.

Evaluating an ensemble member by member (ALmoMD's way) repeats, for every
member, the neighbour list, the edge geometry (vectors, spherical harmonics,
radial basis) and a forward and backward pass of a small model. Here:

- the parameter-free modules in front of the first interaction layer (the
  edge geometry of a NequIP model) run once, on positions and a strain
  ``epsilon`` shared by all members;
- the members' parameters are stacked along a new leading axis and the rest
  of one functional copy of the network is mapped over them with
  ``torch.func.vmap``: every operation runs once for all members, each member
  on its own copy of the geometry outputs;
- one backward of the summed energies gives each member's gradient with
  respect to its copy of the geometry, and one batched backward through the
  shared geometry turns those into forces ``-dE_m/dr`` and stresses
  ``(1/V) dE_m/d epsilon``.

With ``compile=True`` the mapped part (forward and backward) is compiled by
``torch.compile``: element-wise chains fuse, which matters because a small
model on CPU spends its time streaming edge tensors through memory. Compiling
takes tens of seconds once per process (less with a warm cache, see
:func:`compile_cache`), then each step is about twice as fast. The compiled
code has fixed shapes (under ``vmap``, e3nn's tensor products fix the number
of edges), so the edge list is padded up to a capacity with pairs of atom 0
and its own image ``k`` cell vectors away, beyond the cutoff: such a pair
gets a zero radial cutoff, hence zero weight, energy and force, in any model
with a cutoff. The capacity is 10 % above the edges seen and grows (one recompilation)
when exceeded.

NequIP's scatter writes into a fresh tensor in place, which ``vmap`` cannot
batch; :func:`_scatter` is an out-of-place equivalent that replaces it in the
models' modules only while the mapped pass runs (:func:`_out_of_place_scatter`):
any other use of NequIP in the process keeps NequIP's own. NequIP's edge tensor
products (uvu paths, one channel count) run fused (:mod:`almomd.ensemble.fused`)
in the mapped copy of the network; the members' own models keep e3nn's. Packaged models
(``.nequip.zip``) work; compiled ones (``.nequip.pt2``) cannot be mapped and
are evaluated member by member.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch.func import functional_call, vmap

from almomd.ensemble.fused import fuse_tensor_products


def _scatter(src, index, dim=-1, out=None, dim_size=None, reduce="sum"):
    """Out-of-place sum scatter with the signature of ``nequip.nn.utils.scatter``."""
    assert reduce == "sum"
    if dim < 0:
        dim = src.dim() + dim
    if out is None:
        size = list(src.size())
        size[dim] = dim_size if dim_size is not None else int(index.max()) + 1
        # from ``src``, not torch.zeros: compiled under vmap, index_add into a fresh
        # torch.zeros gave the demo's members forces 0.44 eV/A off (torch 2.13)
        out = src.new_zeros(size)
    if index.dim() == 1:  # the usual case, and the fastest
        return out.index_add(dim, index, src.to(out.dtype))
    return out.scatter_add(dim, index.expand_as(src), src.to(out.dtype))


def _scatter_namespaces(models: Sequence[torch.nn.Module]) -> list[dict]:
    """The module globals through which ``models``' forward passes call ``scatter``."""
    namespaces: list[dict] = []
    for model in models:
        for module in model.modules():
            namespace = type(module).forward.__globals__
            if "scatter" in namespace and all(namespace is not n for n in namespaces):
                namespaces.append(namespace)
    return namespaces


@contextlib.contextmanager
def _out_of_place_scatter(namespaces: list[dict]) -> Iterator[None]:
    """Within the block, ``namespaces`` call :func:`_scatter`; NequIP's own afterwards."""
    saved = [namespace["scatter"] for namespace in namespaces]
    for namespace in namespaces:
        namespace["scatter"] = _scatter
    try:
        yield
    finally:
        for namespace, original in zip(namespaces, saved, strict=True):
            namespace["scatter"] = original


def _energy_model(model: torch.nn.Module) -> torch.nn.Module:
    """The energy model inside NequIP's force/stress wrapper."""
    for module in model.modules():
        if type(module).__name__ == "ForceStressOutput":
            return module.func
    raise ValueError("not a NequIP energy model with a ForceStressOutput wrapper")


def _stack(named: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([n[key].detach() for n in named]) for key in named[0]}


class _Chain(torch.nn.Module):
    """Some modules of a NequIP network, applied in their order."""

    def __init__(self, named: Sequence[tuple[str, torch.nn.Module]]):
        super().__init__()
        for name, module in named:
            self.add_module(name, module)

    def forward(self, data: dict) -> dict:
        for module in self.children():
            data = module(data)
        return data


def _geometry_names(network: torch.nn.Module) -> list[str]:
    """Parameter-free modules before the first interaction layer: the edge geometry."""
    names = []
    for name, module in network.named_children():
        if type(module).__name__ == "ConvNetLayer":
            return names
        if not any(True for _ in module.parameters()):
            names.append(name)
    return []  # no interaction layer: share nothing


def _same_tensors(dicts: Sequence[dict[str, torch.Tensor]]) -> bool:
    first = dicts[0]
    return all(
        d.keys() == first.keys() and all(torch.equal(d[k], first[k]) for k in first)
        for d in dicts[1:]
    )


def _split(networks: Sequence[torch.nn.Module]) -> tuple[_Chain, list[_Chain]]:
    """The shared geometry chain and every member's remaining chain."""
    names = _geometry_names(networks[0])
    if any(_geometry_names(net) != names for net in networks):
        names = []  # members of different architectures: share nothing
    states = [
        {f"{n}.{k}": v for n in names for k, v in getattr(net, n).state_dict().items()}
        for net in networks
    ]
    if not _same_tensors(states):
        names = []  # members compute their geometry differently: share nothing
    geometry = _Chain([(n, getattr(networks[0], n)) for n in names])
    rests = [
        _Chain([(n, m) for n, m in net.named_children() if n not in names]) for net in networks
    ]
    return geometry, rests


def compile_cache(directory: Path | str) -> None:
    """Keep torch.compile's caches in ``directory`` (shared by jobs of one campaign)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(directory.resolve()))


#: What compiling costs and saves, measured by benchmarks/ensemble_step.py on one
#: CPU thread (demo-size members; 32 and 108 atoms, 4 and 8 members; the eager
#: pass with fused tensor products): 18 s (warm cache) to 36 s (cold) of
#: compiling, then 0.052-0.080 ms less per atom, member and MD step.
COMPILE_SECONDS = 30.0
SAVED_SECONDS_PER_ATOM_MEMBER_STEP = 6.0e-5


def compile_pays_off(steps: int, atoms: int, members: int) -> tuple[bool, str]:
    """Whether compiling the ensemble earns back its time over an MD run, and why.

    The saving is taken as proportional to atoms x members x steps (how the
    measured savings scale); a GPU gains more per step, so this errs toward
    not compiling there.
    """
    saved = steps * atoms * members * SAVED_SECONDS_PER_ATOM_MEMBER_STEP
    verdict = "pays off" if saved > COMPILE_SECONDS else "does not pay off"
    return saved > COMPILE_SECONDS, (
        f"{steps} steps x {atoms} atoms x {members} members save about {saved:.0f} s "
        f"against about {COMPILE_SECONDS:.0f} s of compiling: it {verdict}"
    )


_HEADROOM = 1.10  # edge capacity over the edges seen, when compiled


class Outputs(NamedTuple):
    """What one pass gives for every member (units the models' own)."""

    energies: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor | None
    features: torch.Tensor


class BatchedMembers:
    """Energies, forces and stresses of every member from one mapped pass.

    ``r_max`` (the models' cutoff) is needed with ``compile`` to pad the edges.
    With ``fuse`` the edge tensor products that can be are replaced by
    :class:`~almomd.ensemble.fused.FusedTensorProductScatter` (:attr:`fused`: how many).
    """

    def __init__(
        self,
        models: Sequence[torch.nn.Module],
        compile: bool = False,
        r_max: float | None = None,
        fuse: bool = True,
    ):
        from nequip.data import AtomicDataDict

        self._keys = AtomicDataDict
        networks = [_energy_model(m) for m in models]
        self._scatter_namespaces = _scatter_namespaces(models)
        self._geometry, rests = _split(networks)
        names = [dict(r.named_parameters()) for r in rests]
        if any(n.keys() != names[0].keys() for n in names):
            raise ValueError("ensemble members differ in architecture; cannot batch them")
        self.params = _stack(names)
        self._rest = copy.deepcopy(rests[0])
        self.fused = fuse_tensor_products(self._rest) if fuse else 0
        kept = dict(self._rest.named_buffers())  # a fused layer keeps no e3nn buffers
        self.buffers = {
            k: v for k, v in _stack([dict(r.named_buffers()) for r in rests]).items() if k in kept
        }
        self.n_members = len(models)
        self.shared_geometry = any(True for _ in self._geometry.children())
        self.compiled = compile
        self.r_max = r_max
        self.edge_capacity = 0
        self._eager = vmap(self._member_energy, in_dims=(0, 0, 0, None))
        self._mapped = torch.compile(self._eager, dynamic=False) if compile else self._eager

    def _member_energy(self, params, buffers, geometry, data):
        data = dict(data)
        data.update(geometry)
        out = functional_call(self._rest, (params, buffers), (data,))
        return out[self._keys.TOTAL_ENERGY_KEY].reshape(-1), out[self._keys.NODE_FEATURES_KEY]

    def _strained(
        self, data: dict, positions: torch.Tensor, strain: torch.Tensor, graph: torch.Tensor
    ) -> dict:
        """``data`` with each graph's positions and cell strained by its ``strain[g]``."""
        keys = self._keys
        data = dict(data)
        symmetric = 0.5 * (strain + strain.transpose(-1, -2))
        data[keys.POSITIONS_KEY] = positions + torch.einsum(
            "ni,nij->nj", positions, symmetric[graph]
        )
        if keys.CELL_KEY in data:
            cell = data[keys.CELL_KEY].reshape(-1, 3, 3)
            data[keys.CELL_KEY] = cell + cell @ symmetric
        return data

    def __call__(self, data: dict) -> Outputs:
        """Return energies ``(M, G)``, forces ``(M, N, 3)``, stresses ``(M, G, 3, 3)`` and
        the last node features ``(M, N, F)`` (the input of the energy readout) of the
        ``G`` graphs of ``data`` (one structure, or several batched by
        ``nequip.data.AtomicDataDict.batched_from_list``: walkers in one pass).

        Stresses are ``None`` without a cell; units are the models' own.
        """
        if not self.compiled:
            return self._evaluate(data)
        padded = self._padded(data)
        try:
            return self._evaluate(padded)
        except torch._dynamo.exc.TorchDynamoException as error:  # no C++ compiler, say
            warnings.warn(f"torch.compile failed, running uncompiled: {error}", stacklevel=2)
            self.compiled, self._mapped = False, self._eager
            return self._evaluate(data)

    def _evaluate(self, data: dict) -> Outputs:
        keys = self._keys
        positions = data[keys.POSITIONS_KEY].detach().requires_grad_(True)
        graph = data.get(keys.BATCH_KEY)
        if graph is None:  # one structure
            graph = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        n_graphs = data[keys.NUM_NODES_KEY].shape[0] if keys.NUM_NODES_KEY in data else 1
        strain = torch.zeros((n_graphs, 3, 3), dtype=positions.dtype, device=positions.device)
        strain.requires_grad_(True)
        shared = self._geometry(self._strained(data, positions, strain, graph))
        # every tensor that depends on positions or strain: one copy per member
        moving = [k for k, v in shared.items() if torch.is_tensor(v) and v.requires_grad]
        copies = {}
        for key in moving:
            value = shared[key].detach()
            copies[key] = value.expand(self.n_members, *value.shape).clone().requires_grad_(True)
        constant = {k: v for k, v in shared.items() if k not in copies}
        with _out_of_place_scatter(self._scatter_namespaces):
            energies, features = self._mapped(self.params, self.buffers, copies, constant)
        grads = torch.autograd.grad(energies.sum(), list(copies.values()), allow_unused=True)
        used = [(shared[k], g) for k, g in zip(moving, grads, strict=True) if g is not None]
        d_positions, d_strain = torch.autograd.grad(
            [t for t, _ in used],
            (positions, strain),
            grad_outputs=[g for _, g in used],
            is_grads_batched=True,
            allow_unused=True,
        )
        stress = None
        if keys.CELL_KEY in data:
            volume = torch.linalg.det(data[keys.CELL_KEY].reshape(-1, 3, 3)).abs()
            stress = d_strain / volume[:, None, None]
        n_atoms = positions.shape[0]
        return Outputs(energies.detach(), -d_positions, stress, features[:, :n_atoms].detach())

    def _padded(self, data: dict) -> dict:
        """``data`` with its edge list padded to :attr:`edge_capacity` (see module doc)."""
        keys = self._keys
        n_edges = data[keys.EDGE_INDEX_KEY].shape[1]
        cell = data.get(keys.CELL_KEY)
        if self.r_max is None or cell is None or keys.EDGE_CELL_SHIFT_KEY not in data:
            raise ValueError(
                "a compiled ensemble needs a periodic cell and the models' r_max to pad "
                "its edges; use compile: false for this system"
            )
        if n_edges > self.edge_capacity:  # the first call, or more edges than ever
            self.edge_capacity = int(n_edges * _HEADROOM) + 1
        extra = self.edge_capacity - n_edges
        a1 = float(torch.linalg.norm(cell.reshape(-1, 3, 3)[0, 0]))  # graph 0's, atom 0's
        images = 2 * int(self.r_max / a1) + 2  # |images * a1| > 2 r_max
        index = data[keys.EDGE_INDEX_KEY]
        shifts = data[keys.EDGE_CELL_SHIFT_KEY]
        far = torch.zeros((extra, 3), dtype=shifts.dtype, device=shifts.device)
        far[:, 0] = images
        padded = dict(data)
        padded[keys.EDGE_INDEX_KEY] = torch.cat([index, index.new_zeros((2, extra))], dim=1)
        padded[keys.EDGE_CELL_SHIFT_KEY] = torch.cat([shifts, far])
        return padded
