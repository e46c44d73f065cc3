"""One device call: candidate GEMV kernels against the tuned ones, judged against the best dense GEMV.

    python3 bench/sweep_kernels3.py --out $OUT/sweep.json [--budget-s 150]

Per LLaMA shape (one token, fp16): cuBLAS and our Triton dense GEMV (best of TUNE_DENSE) give the best dense
time; then the 2:4 GEMV (TUNE_2_4 and new candidates: more rows per program, positions half a byte per group)
and the activation-sparse GEMV at 50 % zeros (TUNE_ACT and new candidates: weight panels, wider output blocks).
Every candidate is checked against the float32 product (rel. error < 1e-2) and timed as the suite's tuner
times (graph_ms: one CUDA-graph pass over copies spanning 256 MB). Prints a table last.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from sparsebench.kernels.act_sparse_gemv import activation_sparse_gemv, to_panels
from sparsebench.kernels.linear_cases import TUNE_ACT
from sparsebench.kernels.row_gemv import TUNE_2_4, TUNE_DENSE, dense_gemv, packed_for, run_gemv_2_4
from sparsebench.kernels.timing import copies_for, graph_ms
from sparsebench.kernels.triton_gemv import pack_2_4

DEV = "cuda"
SHAPES = [("llama7b.q", 4096, 4096), ("llama7b.up", 11008, 4096), ("llama7b.down", 4096, 11008),
          ("llama8b.k", 1024, 4096), ("llama8b.up", 14336, 4096), ("llama8b.down", 4096, 14336)]
NEW_2_4 = [("streamed", 32, 64, 4, 8, "last"), ("streamed", 32, 64, 8, 8, "last"), ("streamed", 16, 64, 8, 8, "last"),
           ("streamed", 16, 128, 8, 8, "last"), ("streamed", 32, 32, 4, 8, "last"), ("streamed", 16, 64, 4, 32, "last"),
           ("nibble", 16, 4, 8, "last"), ("nibble", 8, 4, 8, "last"), ("nibble", 32, 4, 8, "last"),
           ("nibble", 16, 4, 4, "last"), ("nibble", 16, 4, 16, "last"), ("nibble", 8, 4, 16, "last"),
           ("nibble", 4, 4, 16, "last"), ("nibble", 32, 8, 8, "last"), ("nibble", 8, 4, 1 << 20, "store"),
           ("nibble", 16, 4, 1 << 20, "store"), ("nibble", 16, 4, 8, "atomic")]
# (config, panels): panels = the weight stored as (out / block_n, in, block_n)
NEW_ACT = ([(c, True) for c in TUNE_ACT]
           + [(c, p) for p in (False, True) for c in
              [("fma", 8, 128, 2, 8, 1, "last"), ("fma", 8, 128, 2, 16, 1, "last"), ("fma", 8, 256, 4, 8, 1, "last"),
               ("fma", 8, 256, 4, 16, 1, "last"), ("fma", 16, 128, 4, 8, 1, "last"), ("fma", 4, 256, 2, 16, 1, "last"),
               ("mma", 64, 256, 8, 16, 3, "last"), ("mma", 128, 128, 8, 8, 3, "last"),
               ("mma", 64, 128, 4, 16, 4, "last")]])


def err(y, ref) -> float:
    return float((y.float() - ref).norm() / ref.norm())


def best_of(name, configs, run, refs, copies, log, deadline):
    """[(ms, cfg, rel_error)] sorted, for every config that compiles, is right and fits before the deadline."""
    out = []
    for cfg in configs:
        if time.time() > deadline:
            log(f"   {name}: deadline, {len(configs) - len(out)} left untimed")
            break
        try:
            e = max(err(run(cfg, j), refs[j]) for j in (0, 1))
            if not e < 1e-2:
                log(f"   {name} {cfg} WRONG rel error {e:.3g}")
                continue
            out.append((graph_ms(lambda i: run(cfg, i), copies), cfg, e))
        except Exception as exc:  # noqa: BLE001 - a candidate that does not compile is reported, not fatal
            log(f"   {name} {cfg} fails: {exc!r:.200}")
    return sorted(out, key=lambda r: r[0])


def sweep(name, n, k, log, deadline) -> dict:
    g = torch.Generator(device=DEV).manual_seed(0)
    copies = copies_for(n * k * 2, 256) if DEV == "cuda" else 2
    dt = torch.float16 if DEV == "cuda" else torch.float32
    ws = [(torch.randn(n, k, generator=g, device=DEV) * 0.02).to(dt) for _ in range(copies)]
    xs = [torch.randn(k, generator=g, device=DEV).to(dt) for _ in range(copies)]
    refs = [w.float() @ x.float() for w, x in zip(ws, xs)]
    cublas = graph_ms(lambda i: F.linear(xs[i], ws[i]), copies)
    dense = best_of("dense", TUNE_DENSE, lambda c, i: dense_gemv(xs[i], ws[i], *c), refs, copies, log, deadline)
    best_dense = min(cublas, dense[0][0]) if dense else cublas
    row = {"shape": [n, k], "copies": copies, "cublas_ms": cublas, "dense_triton": dense[:3],
           "best_dense_ms": best_dense}
    # 2:4: mask every group of 4 to its 2 largest, pack once per storage kind
    w24 = [w * (w.abs().reshape(n, k // 4, 4).argsort(-1).argsort(-1) >= 2).reshape(n, k) for w in ws]
    refs24 = [w.float() @ x.float() for w, x in zip(w24, xs)]
    base = [pack_2_4(w) for w in w24]
    packs = {}

    def run24(cfg, i):
        key = cfg[0]
        if key not in packs:
            packs[key] = [packed_for(cfg, *b) for b in base]
        return run_gemv_2_4(xs[i], *packs[key][i], cfg)

    cur24 = best_of("2:4 tuned", TUNE_2_4, run24, refs24, copies, log, deadline)
    new24 = best_of("2:4 new", NEW_2_4, run24, refs24, copies, log, deadline)
    row["gemv_2_4"] = {"tuned": cur24[:3], "new": new24[:5]}
    del w24, base, packs
    # activation-sparse at 50 % zeros (random), W^T and its panels
    xa = []
    for x in xs:
        keep = torch.zeros(k, dtype=torch.bool, device=DEV)
        keep[torch.randperm(k, generator=g, device=DEV)[: k // 2]] = True
        xa.append(x * keep)
    refsa = [w.float() @ x.float() for w, x in zip(ws, xa)]
    wts = [w.t().contiguous() for w in ws]
    del ws
    panels = {}

    def runa(item, i):
        cfg, panel = item
        if not panel:
            return activation_sparse_gemv(xa[i], wts[i], *cfg)
        if cfg[2] not in panels:
            panels[cfg[2]] = [to_panels(w, cfg[2]) for w in wts]
        return activation_sparse_gemv(xa[i], panels[cfg[2]][i], *cfg)

    cura = best_of("act tuned", [(c, False) for c in TUNE_ACT], runa, refsa, copies, log, deadline)
    newa = best_of("act new", NEW_ACT, runa, refsa, copies, log, deadline)
    row["act_sparse_50"] = {"tuned": cura[:3], "new": newa[:5]}
    del wts, panels
    if DEV == "cuda":
        torch.cuda.empty_cache()
    f = lambda r: f"{r[0] * 1e3:6.1f} us {best_dense / r[0]:.2f}x {r[1]}" if r else "-"  # noqa: E731
    log(f"== {name} {n}x{k}: cuBLAS {cublas * 1e3:.1f} us, Triton dense {dense[0][0] * 1e3:.1f} us {dense[0][1]}\n"
        f"   2:4 tuned {f(cur24[0] if cur24 else None)}\n   2:4 new   {f(new24[0] if new24 else None)}\n"
        f"   act tuned {f(cura[0] if cura else None)}\n   act new   {f(newa[0] if newa else None)}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=150.0)
    ap.add_argument("--dry", action="store_true", help="CPU, Triton interpreter, one tiny shape (checks the script)")
    args = ap.parse_args()
    if args.dry:  # TRITON_INTERPRET=1 must be set by the caller
        global SHAPES, DEV, graph_ms
        SHAPES, DEV = [("tiny", 128, 512)], "cpu"
        graph_ms = lambda fn, copies: (fn(0), 1.0)[1]  # noqa: E731
    deadline = time.time() + args.budget_s
    log = lambda m: print(m, flush=True)  # noqa: E731
    doc = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu", "torch": torch.__version__, "shapes": {}}
    for name, n, k in SHAPES:
        doc["shapes"][name] = sweep(name, n, k, log, deadline)
        with open(args.out, "w") as fh:
            json.dump(doc, fh, indent=1, default=str)
    print(f"{'shape':<14} {'best dense us':>13} {'2:4 tuned':>10} {'2:4 new':>8} {'act tuned':>10} {'act new':>8}")
    for name, r in doc["shapes"].items():
        bd = r["best_dense_ms"]
        sp = lambda lst: f"{bd / lst[0][0]:.2f}x" if lst else "-"  # noqa: E731
        print(f"{name:<14} {bd * 1e3:>13.1f} {sp(r['gemv_2_4']['tuned']):>10} {sp(r['gemv_2_4']['new']):>8} "
              f"{sp(r['act_sparse_50']['tuned']):>10} {sp(r['act_sparse_50']['new']):>8}")


if __name__ == "__main__":
    main()
