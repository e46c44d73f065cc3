"""One layer's Quest selection and recall at 32k tokens on a GPU: the fused kernels against the eager formulas.

    PYTHONPATH=$PWD python3 bench/fused32k.py [--rows 32768]

SmolLM2-135M's attention shape (9 query heads of 64, 3 key/value heads expanded), random float16 q and k,
quest-prefill at density 1/8 with query blocks of 64: per formula the median of 20 CUDA-event-timed calls
(after 3 warm-ups), and the page-bound kernel at a few tile sizes. Prints one JSON line and a table.
"""
import argparse
import json
import statistics

import torch

from sparsebench import registry
from sparsebench.attention import Budget, executor
from sparsebench.attention.executor import mask_stats


def timed(fn, reps: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=32768)
    rows = p.parse_args().rows
    import triton

    from sparsebench.attention import fused
    from sparsebench.attention.select import block_min_max, group_max
    from sparsebench.registry import sibling_module

    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, 9, rows, 64, device="cuda", generator=g, dtype=torch.float16)
    k = torch.randn(1, 9, rows, 64, device="cuda", generator=g, dtype=torch.float16)
    method = registry.method("quest-prefill").cls()
    quest = sibling_module(__import__(type(method).__module__, fromlist=["x"]).__file__, "quest")
    budget = Budget(0.125, "prefill", 0, rows, query_block=64)
    kmin, kmax = block_min_max(k, 16)
    out = {"rows": rows}
    out["bound_eager_ms"] = timed(lambda: group_max(quest.page_upper_bound(q, kmin, kmax), 64))
    out["bound_fused_ms"] = timed(lambda: fused.page_bound_group_max(q, kmin, kmax, 64, 0, 16))
    res = torch.empty(1, 9, -(-rows // 64), kmin.shape[2], device="cuda", dtype=q.dtype)
    for bp, warps in ((64, 4), (128, 4), (128, 8), (32, 4)):
        grid = (res.shape[2], triton.cdiv(kmin.shape[2], bp), 9)
        out[f"bound_fused_p{bp}_w{warps}_ms"] = timed(lambda: fused._page_bound_kernel[grid](
            q, kmax, kmin, res, *q.stride()[:3], *kmax.stride()[:3], *res.stride()[:3], H=9, ROWS=rows,
            PAGES=kmin.shape[2], G=64, Q0=0, PAGE=16, PREC="tf32", D=64, BLOCK_M=64, BLOCK_P=bp, num_warps=warps))
    out["decide_ms"] = timed(lambda: method.decide(q, k, budget, None))
    pattern = method.decide(q, k, budget, None)
    out["mask_stats_fused_ms"] = timed(lambda: mask_stats(q, k, pattern, 0.125, 0))
    fused_recall = executor.fused_recall
    executor.fused_recall = lambda *a: False
    try:
        out["mask_stats_eager_ms"] = timed(lambda: mask_stats(q, k, pattern, 0.125, 0))
        eager = mask_stats(q, k, pattern, 0.125, 0).recall
    finally:
        executor.fused_recall = fused_recall
    out["recall_eager"], out["recall_fused"] = eager, mask_stats(q, k, pattern, 0.125, 0).recall
    print(json.dumps(out))
    for key, v in out.items():
        print(f"{key:32}{v:>12.4f}")


if __name__ == "__main__":
    main()
