"""NequIP's edge tensor product and its sum over edges in a few whole-tensor operations.

In a NequIP interaction layer every edge ``e`` from atom ``s`` to atom ``d``
carries the message ``TP(x_s, Y_e; w_e)``: the node features ``x`` (``u``
channels of irreps) coupled with the edge's spherical harmonics ``Y`` through
Clebsch-Gordan coefficients, one weight per channel and path from the radial
network; the messages into ``d`` are summed. e3nn evaluates it path by path
and irrep by irrep, each a handful of small operations; for the small models
of an active learning campaign on a CPU the operations cost more than their
arithmetic, and under ``vmap`` (all members in one pass) more again.

With every path ``uvu`` (output channel ``c`` from input channel ``c`` alone,
as in NequIP) and one multiplicity ``u`` throughout, the message is

    m[e, k, c] = w[e, path(k), c] * sum_i C[e, i, k] x[s, i, c],
    C[e, i, k] = sum_j G[j, i k] Y[e, j]

over the components ``i`` of ``x`` and ``k`` of the output, with ``G`` the
coefficients of all paths side by side (path weights and normalisation
included). Features are held as ``(atom or edge, component, channel)``, channels
contiguous; the layer is a gather, one small product for ``C``, one multiply-sum
per output component, one multiply by the weights and one ``index_add`` into
the atoms, forward and backward. ``G`` is read from e3nn's own tensor product
(its output for unit inputs), and the fused layer is checked against e3nn's
on random inputs before it replaces it. A layer of another form, or with more
than :data:`MAX_OUTPUTS` output components per channel, keeps e3nn's.

Measured on one thread, 4 members in one mapped pass, 696 edges, 16 channels,
forward and backward, ms e3nn / fused: NequIP's first layer (``16x0e`` in,
``0e+1o`` out: 4 components) 2.33 / 2.13, its last (``16x0e+16x1o`` in,
scalars out: 2) 3.10 / 2.18; a middle layer of ``l_max`` 1 (8 components)
5.73 / 7.97 and with parity (22) 19.5 / 35.9: there an operation per output
component costs more than e3nn's, so those keep e3nn's. The demo's two layers
are a first and a last.
"""

from __future__ import annotations

import copy

import torch

#: the most output components per channel worth fusing (measured: 4 pays, 8 does not)
MAX_OUTPUTS = 4


class FusedTensorProductScatter(torch.nn.Module):
    """Drop-in for ``nequip.nn._tp_scatter_base.TensorProductScatter`` (see module doc).

    Features are kept as ``(atoms or edges, component, channel)``, channels
    contiguous, so that every operation streams whole rows of channels.
    """

    def __init__(self, tp: torch.nn.Module):
        super().__init__()
        self.channels, self.in_order, self.out_order, path_of, dims = _layout(tp)
        self.n_in, self.n_edge, self.n_out = dims
        self.n_paths = len(tp.instructions)
        # plain attributes, not buffers: shared by all members, never mapped
        self.path_of = None if self.n_paths == self.n_out else path_of
        self.coupling = _coupling(tp, self.in_order, self.out_order, dims).to(_dtype(tp))

    def forward(self, x, edge_attr, edge_weight, edge_dst, edge_src):
        u, n_edges = self.channels, edge_attr.shape[0]
        nodes = x.index_select(1, self.in_order).reshape(x.shape[0], self.n_in, u)
        on_edges = nodes.index_select(0, edge_src)  # (E, n_in, u)
        # each edge's coupling (E, n_in, n_out) from its harmonics, then one output at a time
        coupling = (edge_attr @ self.coupling).reshape(n_edges, self.n_in, -1)
        message = torch.stack(
            [(on_edges * coupling[:, :, k : k + 1]).sum(1) for k in range(self.n_out)], 1
        )
        weights = edge_weight.reshape(n_edges, self.n_paths, u)
        if self.path_of is not None:
            weights = weights.index_select(1, self.path_of)
        message = (message * weights).reshape(n_edges, -1)
        summed = message.new_zeros((x.shape[0], message.shape[-1]))
        summed = summed.index_add(0, edge_dst, message)
        return summed.index_select(1, self.out_order)


def _layout(tp) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int, int]]:
    """Channels, index maps between e3nn's flat layouts and ``(component, channel)``,
    and the path of every output component; ValueError where the tensor product has
    another form."""
    ins = tp.instructions
    if not ins or any(i.connection_mode != "uvu" or not i.has_weight for i in ins):
        raise ValueError("not every path is uvu with per-edge weights")
    if len({i.i_out for i in ins}) < len(ins) or len(ins) != len(tp.irreps_out):
        raise ValueError("paths share outputs")
    muls = {mul for mul, _ in tp.irreps_in1} | {mul for mul, _ in tp.irreps_out}
    if len(muls) != 1 or any(mul != 1 for mul, _ in tp.irreps_in2):
        raise ValueError("channels differ between irreps")
    (u,) = muls
    in_order = [
        s.start + c * ir.dim + m
        for (_, ir), s in zip(tp.irreps_in1, tp.irreps_in1.slices(), strict=True)
        for m in range(ir.dim)
        for c in range(u)
    ]
    out_dims = [tp.irreps_out[i.i_out].ir.dim for i in ins]
    offsets = [sum(out_dims[:p]) for p in range(len(ins))]
    out_order = torch.empty(tp.irreps_out.dim, dtype=torch.long)
    for p, i in enumerate(ins):
        start = tp.irreps_out.slices()[i.i_out].start
        for c in range(u):
            for m in range(out_dims[p]):
                out_order[start + c * out_dims[p] + m] = (offsets[p] + m) * u + c
    path_of = torch.tensor([p for p in range(len(ins)) for _ in range(out_dims[p])])
    dims = (tp.irreps_in1.dim // u, tp.irreps_in2.dim, sum(out_dims))
    return u, torch.tensor(in_order), out_order, path_of, dims


def _coupling(tp, in_order, out_order, dims) -> torch.Tensor:
    """``G`` as ``(n_edge, n_in * n_out)``: e3nn's output for every pair of unit inputs
    of channel 0, weights one."""
    n_in, n_edge, n_out = dims
    u = len(in_order) // n_in
    reference = copy.deepcopy(tp).to(torch.float64)
    x1 = torch.zeros(n_in * n_edge, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.zeros(n_in * n_edge, n_edge, dtype=torch.float64)
    for i in range(n_in):
        for j in range(n_edge):
            x1[i * n_edge + j, in_order[i * u]] = 1.0  # component i of channel 0
            x2[i * n_edge + j, j] = 1.0
    weights = torch.ones(n_in * n_edge, tp.weight_numel, dtype=torch.float64)
    with torch.no_grad():
        out = reference(x1, x2, weights)
    channel_zero = torch.argsort(out_order)[0::u]  # flat positions of channel 0's outputs
    g = out[:, channel_zero].reshape(n_in, n_edge, n_out).transpose(0, 1)
    return g.reshape(n_edge, n_in * n_out)


def _dtype(tp) -> torch.dtype:
    """The dtype e3nn's tensor product computes in (its buffers')."""
    return next((t.dtype for t in tp.buffers() if t.is_floating_point()), torch.float32)


def fuse(tp_scatter: torch.nn.Module, atol: float = 1e-5) -> torch.nn.Module | None:
    """The fused equivalent of a NequIP ``TensorProductScatter``, checked against it on
    random inputs; None where it has another form, too many outputs or differs."""
    try:
        fused = FusedTensorProductScatter(tp_scatter.tp)
    except (ValueError, AttributeError, TypeError):
        return None
    if fused.n_out > MAX_OUTPUTS:
        return None
    generator = torch.Generator().manual_seed(0)
    tp = tp_scatter.tp
    dtype = _dtype(tp)
    n_nodes, n_edges = 5, 11
    x = torch.randn(n_nodes, tp.irreps_in1.dim, generator=generator, dtype=dtype)
    edge_attr = torch.randn(n_edges, tp.irreps_in2.dim, generator=generator, dtype=dtype)
    weight = torch.randn(n_edges, tp.weight_numel, generator=generator, dtype=dtype)
    dst = torch.randint(0, n_nodes, (n_edges,), generator=generator)
    src = torch.randint(0, n_nodes, (n_edges,), generator=generator)
    try:
        with torch.no_grad():
            expected = tp_scatter(x, edge_attr, weight, dst, src)
            found = fused(x, edge_attr, weight, dst, src)
    except RuntimeError:  # dtypes or shapes e3nn accepts and the fused layer does not
        return None
    if found.shape != expected.shape or not torch.allclose(found, expected, atol=atol, rtol=1e-4):
        return None
    return fused


def fuse_tensor_products(network: torch.nn.Module) -> int:
    """Replace, in place, every NequIP ``TensorProductScatter`` of ``network`` that
    :func:`fuse` can fuse; return how many were replaced."""
    replaced = 0
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "TensorProductScatter":
                fused = fuse(child)
                if fused is not None:
                    setattr(parent, name, fused)
                    replaced += 1
    return replaced
