"""Configuration sweep of the activation-sparse GEMV on a CUDA device (how ``TUNE_ACT`` was chosen).

    python -m sparsebench.kernels.sweep_act [shape substrings, comma-separated] [--out sweep.json]

Per shape: every candidate configuration at 50 % activation sparsity (TEAL's one-tile-per-program
kernel among them), each checked against a float32 reference and timed as the suite's tuner times
(one CUDA-graph pass over input copies spanning 256 MB); then, at 35/50/65/80 % sparsity, the best
five re-timed and the winner timed against the dense cuBLAS GEMV exactly as the suite does.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv
from sparsebench.kernels.timing import copies_for, graph_ms, time_pair

SHAPES = [("smollm2.up", 1536, 576), ("smollm2.down", 576, 1536), ("llama7b.q", 4096, 4096),
          ("llama7b.up", 11008, 4096), ("llama7b.down", 4096, 11008), ("llama8b.k", 1024, 4096),
          ("llama8b.up", 14336, 4096), ("llama8b.down", 4096, 14336)]
DENSITIES = (0.65, 0.5, 0.35, 0.2)  # kept fractions: 35/50/65/80 % sparsity
TEAL = ("fma", 64, 128, 2, 1, 1, "atomic")  # TEAL's kernel and its default tile


def configs(k: int) -> list[tuple]:
    """(engine, block_k, block_n, num_warps, tiles, stages, reduce), one per distinct kernel launch."""
    out = [TEAL, ("fma", 16, 64, 1, 1, 1, "atomic")]
    fma = [((16, 64, 1), (2, 4, 8, 16)), ((16, 128, 2), (4, 8)), ((32, 128, 2), (4, 8)), ((32, 64, 2), (2, 4, 8)),
           ((8, 64, 1), (4, 8, 16)), ((16, 32, 1), (4, 8))]
    mma = [((32, 256, 4, 4), (4, 8, 16)), ((128, 64, 4, 3), (8, 16)), ((64, 128, 4, 3), (8, 16)),
           ((64, 64, 2, 3), (16,)), ((128, 128, 4, 3), (8,)), ((32, 128, 4, 4), (8, 16))]
    for (bk, bn, nw), tiles in fma:
        out += [("fma", bk, bn, nw, t, 1, red) for t in tiles for red in ("atomic", "last")]
    for (bk, bn, nw, st), tiles in mma:
        out += [("mma", bk, bn, nw, t, st, red) for t in tiles for red in ("atomic", "last")]
    seen, unique = set(), []
    for c in out:  # tiles past K = one split: the same launch whatever the reduction
        one_split = c[4] * c[1] >= k
        key = c[:4] + (min(c[4], -(-k // c[1])), c[5], "store" if one_split else c[6])
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def _data(n: int, k: int, density: float, seed: int):
    g = torch.Generator(device="cuda").manual_seed(seed)
    copies = copies_for(n * k * 2, 256)
    ws = [(torch.randn(n, k, generator=g, device="cuda") * 0.02).half() for _ in range(copies)]
    xs = []
    for _ in range(copies):
        keep = torch.zeros(k, dtype=torch.bool, device="cuda")
        keep[torch.randperm(k, generator=g, device="cuda")[: round(density * k)]] = True
        xs.append(torch.randn(k, generator=g, device="cuda").half() * keep)
    return ws, [w.t().contiguous() for w in ws], xs, copies


def _err(y, w, x) -> float:
    ref = w.float() @ x.float()
    return float((y.float() - ref).norm() / ref.norm())


def sweep_shape(name: str, n: int, k: int, log=print) -> dict:
    ws, wts, xs, copies = _data(n, k, 0.5, seed=0)
    dense = graph_ms(lambda i: F.linear(xs[i], ws[i]), copies)
    res = []
    for cfg in configs(k):
        try:
            err = max(_err(activation_sparse_gemv(xs[j], wts[j], *cfg), ws[j], xs[j]) for j in (0, 1))
            ms = graph_ms(lambda i: activation_sparse_gemv(xs[i], wts[i], *cfg), copies)
        except Exception as exc:  # noqa: BLE001 - a config that does not compile is reported, not fatal
            log(f"   {cfg} fails: {exc!r:.160}")
            continue
        res.append({"ms": ms, "config": cfg, "rel_error": err})
    res.sort(key=lambda r: r["ms"])
    teal = next(r for r in res if r["config"] == TEAL)
    log(f"== {name} {n}x{k} (copies {copies}): dense {dense * 1e3:.1f} us; TEAL's kernel {teal['ms'] * 1e3:.1f} us "
        f"({dense / teal['ms']:.2f}x); best {res[0]['ms'] * 1e3:.1f} us ({dense / res[0]['ms']:.2f}x) "
        f"{res[0]['config']}")
    wrong = [r for r in res if not r["rel_error"] < 1e-2]
    if wrong:
        log(f"   WRONG: {wrong}")
    del ws, wts, xs
    top = [r["config"] for r in res[:5]]
    rows = []
    for d in DENSITIES:
        ws, wts, xs, copies = _data(n, k, d, seed=1)
        cfg = min(top, key=lambda c: graph_ms(lambda i: activation_sparse_gemv(xs[i], wts[i], *c), copies))
        t = time_pair(lambda i: F.linear(xs[i], ws[i]), lambda i: activation_sparse_gemv(xs[i], wts[i], *cfg),
                      copies, "cuda", 10, 50)
        rows.append({"density": d, "dense_ms": t.dense_ms, "sparse_ms": t.sparse_ms,
                     "speedup": t.dense_ms / t.sparse_ms, "config": cfg,
                     "rel_error": _err(activation_sparse_gemv(xs[0], wts[0], *cfg), ws[0], xs[0])})
        log(f"   {1 - d:.0%} sparse: dense {t.dense_ms * 1e3:.1f} us, sparse {t.sparse_ms * 1e3:.1f} us, "
            f"{t.dense_ms / t.sparse_ms:.2f}x {cfg}")
        del ws, wts, xs
        torch.cuda.empty_cache()
    return {"shape": [n, k], "dense_ms": dense, "teal_ms": teal["ms"], "sweep": res, "rows": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shapes", nargs="?", default="", help="comma-separated substrings of shape names")
    ap.add_argument("--out", default=None, help="write every timing as JSON")
    args = ap.parse_args(argv)
    out = {}
    for name, n, k in SHAPES:
        if not args.shapes or any(p in name for p in args.shapes.split(",")):
            out[name] = sweep_shape(name, n, k, log=lambda msg: print(msg, flush=True))
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
