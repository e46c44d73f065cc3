"""What bench/sweep_gather.py and bench/sweep_scratch.py share: one shape's inputs at 50 % zero activations and
its dense GEMVs' times (imported by those scripts from their own directory)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparsebench.kernels.row_gemv import TUNE_DENSE, dense_gemv
from sparsebench.kernels.timing import copies_for


def shape_inputs(n: int, k: int, device: str, timer, tune_dense=TUNE_DENSE):
    """Copies of W^T (k, n) and of x (half its entries zero) spanning 256 MB (2 on the CPU), the float32 product
    on copy 0, and ``timer(fn, copies)`` of cuBLAS and of the best of ``tune_dense`` on the row-major weight."""
    g = torch.Generator(device=device).manual_seed(0)
    copies = copies_for(n * k * 2, 256) if device == "cuda" else 2
    dt = torch.float16 if device == "cuda" else torch.float32
    ws = [(torch.randn(n, k, generator=g, device=device) * 0.02).to(dt) for _ in range(copies)]
    xs = [torch.randn(k, generator=g, device=device).to(dt) * (torch.rand(k, generator=g, device=device) >= 0.5)
          for _ in range(copies)]
    ref = ws[0].float() @ xs[0].float()
    cublas = timer(lambda i: F.linear(xs[i], ws[i]), copies)
    dense = min(timer(lambda i, c=c: dense_gemv(xs[i], ws[i], *c), copies) for c in tune_dense)
    wts = [w.t().contiguous() for w in ws]
    return copies, wts, xs, ref, cublas, dense
