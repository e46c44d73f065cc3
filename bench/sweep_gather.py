"""Every TUNE_ACT candidate of the activation-sparse GEMV at 50 % zeros on the LLaMA shapes, one table per shape.

    python3 bench/sweep_gather.py [--dry]      # one device call, ~1 min; --dry: CPU, Triton interpreter, tiny shape

Times as the suite's tuner screens (graph_ms: one CUDA-graph pass over copies spanning 256 MB, median of 10),
beside cuBLAS and the best of TUNE_DENSE; every candidate checked against the float32 product first.
"""

from __future__ import annotations

import sys

import torch

from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv
from sparsebench.kernels.linear_cases import TUNE_ACT
from sparsebench.kernels.row_gemv import TUNE_DENSE
from sparsebench.kernels.timing import graph_ms

from act_sweep_inputs import shape_inputs  # noqa: E402 - this directory

# gather candidates beyond TUNE_ACT: more warps, longer chunks, wider output blocks
EXTRA = [("gather", 32, 64, 4, 16, 1, "last"), ("gather", 64, 64, 4, 8, 1, "last"), ("gather", 16, 256, 4, 16, 1, "last"),
         ("gather", 64, 128, 8, 8, 1, "last"), ("gather", 32, 64, 2, 32, 1, "last"), ("gather", 16, 64, 1, 8, 1, "atomic")]
DRY = "--dry" in sys.argv
DEV = "cpu" if DRY else "cuda"
SHAPES = [(128, 512)] if DRY else [(4096, 4096), (11008, 4096), (4096, 11008), (1024, 4096), (14336, 4096)]
if DRY:
    graph_ms = lambda fn, copies: (fn(0), 1.0)[1]  # noqa: E731
    TUNE_ACT = [c for c in TUNE_ACT if c[0] != "mma"][:3] + [c for c in TUNE_ACT if c[0] == "gather"][:2]
    TUNE_DENSE = TUNE_DENSE[:1]

for n, k in SHAPES:
    copies, wts, xs, ref, cublas, dense = shape_inputs(n, k, DEV, graph_ms, TUNE_DENSE)
    best_dense = min(cublas, dense)
    rows = []
    for cfg in TUNE_ACT + ([] if DRY else EXTRA):
        try:
            err = float((activation_sparse_gemv(xs[0], wts[0], *cfg).float() - ref).norm() / ref.norm())
            ms = graph_ms(lambda i, c=cfg: activation_sparse_gemv(xs[i], wts[i], *c), copies) if err < 1e-2 else None
        except Exception as exc:  # noqa: BLE001 - a candidate that fails is listed, not fatal
            err, ms = repr(exc)[:80], None
        rows.append((ms if ms is not None else float("inf"), cfg, err))
    rows.sort(key=lambda r: r[0])
    print(f"== {n}x{k}: cuBLAS {cublas * 1e3:.2f} us, Triton dense {dense * 1e3:.2f} us", flush=True)
    for ms, cfg, err in rows:
        sp = f"{best_dense / ms:.3f}x" if ms != float("inf") else "-"
        print(f"   {ms * 1e3:7.2f} us {sp:>7} {cfg} err {err}", flush=True)
    del wts
    if not DRY:
        torch.cuda.empty_cache()
