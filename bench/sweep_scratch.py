"""The activation-sparse GEMV's scratch engine at 50 % zeros on the LLaMA shapes, on W^T and on panels.

    python3 bench/sweep_scratch.py [--wide] [--dry]   # one device call, ~1-3 min; --dry: CPU, Triton interpreter, tiny shape

Every TUNE_ACT candidate and a grid of scratch_fma / scratch candidates, each on the weight stored as W^T (in, out)
and, where the candidate's block_n divides out, as panels (``act_sparse_gemv.to_panels``: each program's block of
outputs one contiguous stretch over all inputs, so its live rows lie block_n values apart). Timed as the suite's
tuner screens (graph_ms: a CUDA-graph pass over copies spanning 256 MB, median of 10), beside cuBLAS and the best
of TUNE_DENSE; every candidate checked against the float32 product first. Prints the best five per shape. ``--wide``: instead
of the grid, output blocks of 512-1024 columns (each live row read as 1-2 KB contiguous), the scratch engine's FMA variant, W^T only.
"""

from __future__ import annotations

import itertools
import sys

import torch

from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv, to_panels
from sparsebench.kernels.linear_cases import TUNE_ACT
from sparsebench.kernels.row_gemv import TUNE_DENSE
from sparsebench.kernels.timing import graph_ms

from act_sweep_inputs import shape_inputs  # noqa: E402 - this directory

DRY = "--dry" in sys.argv
DEV = "cpu" if DRY else "cuda"
SHAPES = [(128, 512)] if DRY else [(4096, 4096), (11008, 4096), (4096, 11008), (14336, 4096), (4096, 14336)]
GRID = [("scratch_fma", bk, bn, w, chunk // bk, 1, red)
        for bk, bn, w, chunk, red in itertools.product((8, 16), (64, 128, 256), (1, 2), (256, 512, 1024),
                                                       ("atomic", "last"))
        if bk * bn // (32 * w) in (16, 32)]  # 16-32 weights per thread per tile
GRID += [("scratch", bk, bn, w, chunk // bk, st, "last") for bk, bn, w, chunk, st in
         [(64, 64, 4, 512, 3), (64, 128, 4, 512, 3), (32, 128, 4, 512, 4), (64, 256, 4, 1024, 3)]]
if "--wide" in sys.argv:  # output blocks of 512-1024 columns: each live row read as 1-2 KB contiguous
    GRID = [(eng, bk, bn, w, chunk // bk, 1, red)
            for eng, bk, bn, w, chunk, red in itertools.product(("scratch_fma",), (4, 8), (512, 1024), (4, 8),
                                                                (64, 128, 256), ("atomic", "last"))
            if 16 <= bk * bn // (32 * w) <= 32 and chunk // bk >= 2]
if DRY:
    graph_ms = lambda fn, copies: (fn(0), 1.0)[1]  # noqa: E731
    GRID = [("scratch_fma", 8, 32, 1, 4, 1, "last"), ("scratch", 16, 32, 1, 2, 2, "atomic")]
    TUNE_ACT = TUNE_ACT[:1]
    TUNE_DENSE = TUNE_DENSE[:1]

for n, k in SHAPES:
    copies, wts, xs, ref, cublas, dense = shape_inputs(n, k, DEV, graph_ms, TUNE_DENSE)
    best_dense = min(cublas, dense)
    panels: dict = {}
    rows = []
    layouts = ("wt",) if "--wide" in sys.argv else ("wt", "panels")
    for cfg, layout in [(c, lay) for c in TUNE_ACT + GRID for lay in layouts]:
        bn = cfg[2]
        if layout == "panels":
            if n % bn:
                continue
            if bn not in panels:
                panels[bn] = [to_panels(w, bn) for w in wts]
            weights = panels[bn]
        else:
            weights = wts
        try:
            y = activation_sparse_gemv(xs[0], weights[0], *cfg)
            err = float((y.float() - ref).norm() / ref.norm())
            ms = graph_ms(lambda i, c=cfg, w=weights: activation_sparse_gemv(xs[i], w[i], *c), copies) if err < 1e-2 else None
        except Exception as exc:  # noqa: BLE001 - a candidate that fails is listed, not fatal
            err, ms = repr(exc)[:80], None
        rows.append((ms if ms is not None else float("inf"), cfg, layout, err))
    rows.sort(key=lambda r: r[0])
    tuned = min((r for r in rows if r[2] == "wt" and r[1] in TUNE_ACT), key=lambda r: r[0])
    print(f"== {n}x{k}: cuBLAS {cublas * 1e3:.2f} us, Triton dense {dense * 1e3:.2f} us; best of TUNE_ACT on W^T "
          f"{tuned[0] * 1e3:.2f} us {best_dense / tuned[0]:.3f}x {tuned[1]}", flush=True)
    for ms, cfg, layout, err in rows[:5]:
        print(f"   {ms * 1e3:7.2f} us {best_dense / ms:6.3f}x {layout:<6} {cfg}", flush=True)
    print(f"   failed: {sum(r[0] == float('inf') for r in rows)} of {len(rows)}", flush=True)
    del wts, panels
    if not DRY:
        torch.cuda.empty_cache()
