"""NequIP's edge tensor product and its sum over edges in a few whole-tensor operations.

In a NequIP interaction layer every edge ``e`` from atom ``s`` to atom ``d``
carries the message ``TP(x_s, Y_e; w_e)``: the node features ``x`` (``u``
channels of irreps) coupled with the edge's spherical harmonics ``Y`` through
Clebsch-Gordan coefficients, one weight per channel and path from the radial
network; the messages into ``d`` are summed. e3nn's generated code takes many
small operations per path (reshapes, broadcasts, einsums); for the small
models of an active learning campaign on a CPU they cost more than their
arithmetic, and under ``vmap`` (all members in one pass) more again.

With every path ``uvu`` (output channel ``c`` from input channel ``c`` alone,
as in NequIP) and one multiplicity ``u`` throughout, path ``p`` from input
irrep ``a`` gives

    m_p[e, k, c] = w[e, p, c] * sum_(i in a) C_p[e, i, k] x[s, i, c],
    C_p[e, i, k] = sum_j G_p[j, i, k] Y[e, j]

with ``G_p`` the path's coefficients (path weight and normalisation
included). Features are held per input irrep as ``(atom or edge, component,
channel)``, channels contiguous: the layer is one gather per input irrep onto
the edges, one product for every path's ``C_p`` at once, a multiply (and a sum
where the irrep has several components) and a weighting per path, and one
``index_add`` into the atoms; inputs, couplings and weights are split, not
sliced, so that the backward adds no zero-filled copies. ``G`` is read from
e3nn's own tensor product (its output for unit inputs), and the fused layer is
checked against e3nn's on random inputs before it replaces it; a layer of
another form keeps e3nn's.

Measured by ``benchmarks/tensor_product.py`` (one thread, 4 members in one
mapped pass, 696 edges, forward and backward, ms e3nn / fused): NequIP's first
layer (``16x0e`` in, ``0e+1o``) 2.28 / 1.79, a middle one (``16x0e+16x1o``)
5.82 / 4.95, with parity 20.0 / 15.1, with 64 channels 18.8 / 16.6, its last
(scalars out) 2.94 / 1.86; ``l_max`` 2 first 6.19 / 4.39, middle 32.2 / 27.7,
last 11.9 / 4.81.
"""

from __future__ import annotations

import copy

import torch


class FusedTensorProductScatter(torch.nn.Module):
    """Drop-in for ``nequip.nn._tp_scatter_base.TensorProductScatter`` (see module doc).

    Features are kept as ``(atoms or edges, component, channel)``, channels
    contiguous, so that every operation streams whole rows of channels.
    """

    def __init__(self, tp: torch.nn.Module):
        super().__init__()
        self.channels, in_order, out_order, blocks, dims = _layout(tp)
        full = _coupling(tp, in_order, out_order, dims)  # (n_edge, n_in, n_out)
        # every input irrep's slice of the flat features and its components
        self.irreps = [(s.start, s.stop, ir.dim) for (_, ir), s in
                       zip(tp.irreps_in1, tp.irreps_in1.slices(), strict=True)]  # fmt: skip
        # per path: its input irrep, its number of outputs, its columns of G
        self.paths, columns = [], []
        for p, ((a0, a1), (k0, k1)) in enumerate(blocks):
            columns.append(full[:, a0:a1, k0:k1].reshape(full.shape[0], -1))
            self.paths.append((tp.instructions[p].i_in1, k1 - k0))
        self.sizes = [c.shape[1] for c in columns]
        # buffers of this layer alone: not among the members' stacked buffers, so
        # functional_call keeps these, shared by all members, never mapped
        device = _device(tp)
        coupling = torch.cat(columns, 1).to(device=device, dtype=_dtype(tp))
        self.register_buffer("coupling", coupling, persistent=False)
        self.register_buffer("out_order", out_order.to(device), persistent=False)

    def forward(self, x, edge_attr, edge_weight, edge_dst, edge_src):
        u, n_edges, n_nodes = self.channels, edge_attr.shape[0], x.shape[0]
        # each input irrep on the edges as (E, components, channels): the atoms' features
        # sliced per irrep, the edge tensors split, never sliced, so that the backward
        # adds no zero-filled copies of edge size
        on_edges = [
            x[:, start:stop].reshape(n_nodes, u, dim).transpose(1, 2).index_select(0, edge_src)
            for start, stop, dim in self.irreps
        ]
        couplings = (edge_attr @ self.coupling).split(self.sizes, 1)
        weights = edge_weight.reshape(n_edges, len(self.paths), u).unbind(1)
        parts = []
        for (irrep, n_out), c, w in zip(self.paths, couplings, weights, strict=True):
            inputs = on_edges[irrep]
            if inputs.shape[1] == 1:  # a scalar input: a broadcast, no sum
                part = c.reshape(n_edges, n_out, 1) * inputs
            else:
                c = c.reshape(n_edges, inputs.shape[1], n_out, 1)
                part = (c * inputs.unsqueeze(2)).sum(1)
            parts.append(part * w.unsqueeze(1))
        message = torch.cat(parts, 1).reshape(n_edges, -1)  # (E, n_out * u)
        summed = message.new_zeros((n_nodes, message.shape[-1]))
        summed = summed.index_add(0, edge_dst, message)
        return summed.index_select(1, self.out_order)


def _layout(tp) -> tuple[int, torch.Tensor, torch.Tensor, list, tuple[int, int, int]]:
    """Channels, index maps between e3nn's flat layouts and ``(component, channel)``,
    and every path's input and output component ranges; ValueError where the tensor
    product has another form."""
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
    in_starts = [0]
    for _, ir in tp.irreps_in1:
        in_starts.append(in_starts[-1] + ir.dim)
    blocks = [
        ((in_starts[i.i_in1], in_starts[i.i_in1 + 1]), (offsets[p], offsets[p] + out_dims[p]))
        for p, i in enumerate(ins)
    ]
    dims = (tp.irreps_in1.dim // u, tp.irreps_in2.dim, sum(out_dims))
    return u, torch.tensor(in_order), out_order, blocks, dims


def _coupling(tp, in_order, out_order, dims) -> torch.Tensor:
    """``G`` as ``(n_edge, n_in, n_out)``: e3nn's output for every pair of unit inputs
    of channel 0, weights one."""
    n_in, n_edge, n_out = dims
    u = len(in_order) // n_in
    reference = copy.deepcopy(tp).to(device="cpu", dtype=torch.float64)
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
    return out[:, channel_zero].reshape(n_in, n_edge, n_out).transpose(0, 1)


def _device(tp) -> torch.device:
    """The device e3nn's tensor product lives on (its buffers')."""
    return next((t.device for t in tp.buffers()), torch.device("cpu"))


def _dtype(tp) -> torch.dtype:
    """The dtype e3nn's tensor product computes in (its buffers')."""
    return next((t.dtype for t in tp.buffers() if t.is_floating_point()), torch.float32)


def fuse(tp_scatter: torch.nn.Module, atol: float = 1e-5) -> torch.nn.Module | None:
    """The fused equivalent of a NequIP ``TensorProductScatter``, checked against it on
    random inputs; None where it has another form or differs."""
    try:
        fused = FusedTensorProductScatter(tp_scatter.tp)
    except (ValueError, AttributeError, TypeError):
        return None
    generator = torch.Generator().manual_seed(0)
    tp = tp_scatter.tp
    dtype = _dtype(tp)
    n_nodes, n_edges = 5, 11
    x, edge_attr, weight = (
        torch.randn(n, dim, generator=generator, dtype=dtype).to(_device(tp))
        for n, dim in (
            (n_nodes, tp.irreps_in1.dim),
            (n_edges, tp.irreps_in2.dim),
            (n_edges, tp.weight_numel),
        )
    )
    dst, src = torch.randint(0, n_nodes, (2, n_edges), generator=generator).to(_device(tp))
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


def nequip_layer(irreps_in: str, edge: str, irreps_out: str) -> torch.nn.Module:
    """A NequIP ``TensorProductScatter`` as its interaction layer builds one: a uvu
    path from every input irrep and edge harmonic to every allowed output irrep,
    the outputs sorted (for tests and benchmarks of :func:`fuse`)."""
    from e3nn import o3
    from nequip.nn._tp_scatter_base import TensorProductScatter

    irreps_in, edge, irreps_out = o3.Irreps(irreps_in), o3.Irreps(edge), o3.Irreps(irreps_out)
    mid, paths = [], []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_edge) in enumerate(edge):
            for ir_out in ir_in * ir_edge:
                if ir_out in irreps_out:
                    paths.append((i, j, len(mid), "uvu", True))
                    mid.append((mul, ir_out))
    mid, order, _ = o3.Irreps(mid).sort()
    paths = [(a, b, order[c], mode, weighted) for a, b, c, mode, weighted in paths]
    return TensorProductScatter(irreps_in, edge, mid, paths)
