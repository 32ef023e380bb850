"""NequIP's edge tensor product and scatter: e3nn's against almomd's fused layer.

Measured side by side in one run, 1 thread: forward and backward of one
interaction layer's tensor product and sum over edges, under ``vmap`` over
4 ensemble members (as in the batched ensemble pass), 32 atoms and 696 edges
(the demo's CuI cell with r_max 5), ms per pass (best of 7 rounds of 10):

- ``e3nn``: NequIP's ``TensorProductScatter`` (e3nn's generated code; the
  sum over edges by the batched pass's out-of-place scatter);
- ``fused``: :class:`almomd.ensemble.fused.FusedTensorProductScatter`.

Layers built as NequIP builds them (every uvu path to an allowed output):
its first (scalars in), middle, middle with parity, and last (scalars out)
layers at ``l_max`` 1 with 16 channels (the demo's), a middle one with 64
channels, and ``l_max`` 2 ones. The last line is
``ratio_fused_tensor_product <fused / e3nn>`` summed over the demo's two
layers (first and last).
Usage: .venv/bin/python benchmarks/tensor_product.py
"""

from __future__ import annotations

import os
import sys
import time

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_name] = "1"

import torch  # noqa: E402
from nequip.nn import _tp_scatter_base  # noqa: E402
from torch.func import vmap  # noqa: E402

from almomd.ensemble.batched import _scatter  # noqa: E402
from almomd.ensemble.fused import fuse, nequip_layer  # noqa: E402

MEMBERS, ATOMS, EDGES = 4, 32, 696

LAYERS = {
    "first": ("16x0e", "0e+1o", "16x0e+16x1o"),
    "middle": ("16x0e+16x1o", "0e+1o", "16x0e+16x1o"),
    "middle_parity": ("16x0e+16x1o+16x1e+16x0o", "0e+1o", "16x0e+16x1o+16x1e+16x0o"),
    "middle_64": ("64x0e+64x1o", "0e+1o", "64x0e+64x1o"),
    "last": ("16x0e+16x1o", "0e+1o", "16x0e"),
    "l2_first": ("32x0e", "0e+1o+2e", "32x0e+32x1o+32x2e"),
    "l2_middle": ("16x0e+16x1o+16x2e", "0e+1o+2e", "16x0e+16x1o+16x2e"),
    "l2_last": ("32x0e+32x1o+32x2e", "0e+1o+2e", "32x0e"),
}


def ms_per_pass(layer, x, y, w, dst, src) -> float:
    mapped = vmap(lambda a, b, c: layer(a, b, c, dst, src))

    def once():
        out = mapped(x, y, w)
        torch.autograd.grad(out.square().sum(), (x, y, w))

    best = float("inf")
    for _ in range(7):
        once()
        start = time.perf_counter()
        for _ in range(10):
            once()
        best = min(best, (time.perf_counter() - start) / 10 * 1000)
    return best


def main() -> int:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    _tp_scatter_base.scatter = _scatter  # out of place, as in the batched pass
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, ATOMS, (EDGES,), generator=g)
    dst = torch.randint(0, ATOMS, (EDGES,), generator=g)
    print(f"{'layer':>14} {'in':>24} {'e3nn_ms':>8} {'fused_ms':>8} {'ratio':>6}")
    times = {}
    for name, irreps in LAYERS.items():
        layer = nequip_layer(*irreps)
        fused = fuse(layer)
        if fused is None:
            print(f"{name:>14} not fused")
            continue
        tp = layer.tp
        x = torch.randn(MEMBERS, ATOMS, tp.irreps_in1.dim, generator=g, requires_grad=True)
        y = torch.randn(MEMBERS, EDGES, tp.irreps_in2.dim, generator=g, requires_grad=True)
        w = torch.randn(MEMBERS, EDGES, tp.weight_numel, generator=g, requires_grad=True)
        times[name] = (
            ms_per_pass(layer, x, y, w, dst, src),
            ms_per_pass(fused, x, y, w, dst, src),
        )
        e3nn, ours = times[name]
        print(f"{name:>14} {irreps[0]:>24} {e3nn:8.2f} {ours:8.2f} {ours / e3nn:6.2f}", flush=True)
    demo = [times[n] for n in ("first", "last")]
    ratio = sum(t[1] for t in demo) / sum(t[0] for t in demo)
    print(f"ratio_fused_tensor_product {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
