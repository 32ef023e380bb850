"""The fused edge tensor product gives e3nn's messages and gradients, also under vmap."""

import pytest
import torch
from e3nn import o3
from torch.func import vmap

from almomd.ensemble.batched import _out_of_place_scatter, _scatter_namespaces
from almomd.ensemble.fused import (
    FusedTensorProductScatter,
    fuse,
    fuse_tensor_products,
    nequip_layer,
)


def interaction(irreps_in: str, edge: str, irreps_out: str):
    return nequip_layer(irreps_in, edge, irreps_out).to(torch.float64)


FIRST = ("5x0e", "1x0e+1x1o", "5x0e+5x1o")  # NequIP's first layer: scalars in
LAST = ("5x0e+5x1o", "1x0e+1x1o", "5x0e")  # its last: scalars out


def inputs(tp, n_nodes=6, n_edges=15, members=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    lead = () if members is None else (members,)
    x = torch.randn(*lead, n_nodes, tp.irreps_in1.dim, generator=g, dtype=torch.float64)
    y = torch.randn(*lead, n_edges, tp.irreps_in2.dim, generator=g, dtype=torch.float64)
    w = torch.randn(*lead, n_edges, tp.weight_numel, generator=g, dtype=torch.float64)
    dst = torch.randint(0, n_nodes, (n_edges,), generator=g)
    src = torch.randint(0, n_nodes, (n_edges,), generator=g)
    return [t.requires_grad_(True) for t in (x, y, w)], dst, src


@pytest.mark.parametrize("layer", [FIRST, LAST], ids=["first", "last"])
def test_fused_messages_and_gradients_are_e3nns(layer):
    original = interaction(*layer)
    fused = fuse(original)
    assert isinstance(fused, FusedTensorProductScatter)
    (x, y, w), dst, src = inputs(original.tp)
    expected = original(x, y, w, dst, src)
    found = fused(x, y, w, dst, src)
    torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)
    probe = torch.randn_like(expected)  # any direction: a full vector-Jacobian product
    grads_expected = torch.autograd.grad((expected * probe).sum(), (x, y, w))
    grads_found = torch.autograd.grad((found * probe).sum(), (x, y, w))
    for a, b in zip(grads_found, grads_expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_layer_maps_over_members_like_e3nns():
    original = interaction(*LAST)
    fused = fuse(original)
    (x, y, w), dst, src = inputs(original.tp, members=3)
    with _out_of_place_scatter(_scatter_namespaces([original])):
        expected = vmap(lambda a, b, c: original(a, b, c, dst, src))(x, y, w)
    found = vmap(lambda a, b, c: fused(a, b, c, dst, src))(x, y, w)
    torch.testing.assert_close(found, expected, rtol=1e-10, atol=1e-12)
    for m in range(3):  # each member its own
        torch.testing.assert_close(found[m], original(x[m], y[m], w[m], dst, src))


MIDDLE = ("5x0e+5x1o", "1x0e+1x1o+1x2e", "5x0e+5x1o+5x1e+5x0o")  # several paths per input


def test_a_middle_layer_with_many_paths_is_e3nns_too():
    original = interaction(*MIDDLE)
    fused = fuse(original)
    (x, y, w), dst, src = inputs(original.tp)
    torch.testing.assert_close(fused(x, y, w, dst, src), original(x, y, w, dst, src))


def test_tensor_products_of_another_form_keep_e3nns():
    channels_differ = interaction("5x0e+3x1o", "1x0e+1x1o", "5x0e")
    assert fuse(channels_differ) is None
    full = interaction(*LAST)
    full.tp = o3.FullyConnectedTensorProduct("5x0e+5x1o", "1x0e+1x1o", "5x0e", shared_weights=False)
    assert fuse(full) is None  # uvw paths: channels mix


def test_fuse_tensor_products_replaces_only_what_it_can():
    network = torch.nn.Sequential(
        interaction(*FIRST), interaction("5x0e+3x1o", "1x0e+1x1o", "5x0e"), interaction(*LAST)
    )
    assert fuse_tensor_products(network) == 2
    fused = [isinstance(m, FusedTensorProductScatter) for m in network]
    assert fused == [True, False, True]
