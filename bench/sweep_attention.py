"""Every block-attention candidate config timed on LLaMA-7B heads at 32k tokens (CUDA), to see which kernel
ideas win where the tuner keeps only the winner:

    python3 bench/sweep_attention.py --out sweep_attention.json [--tokens 32768] [--densities 0.05,0.5,1]

Per (density, config): compiled and checked against the float32 reference on the first and last query blocks
(rel. error < 1e-2; a config that fails to compile or differs is listed with its error), then the median of 5
CUDA-event-timed calls after one warm-up; TFLOP/s counts the kept blocks only. Full SDPA is timed alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from sparsebench.kernels.attention_cases import BLOCK, block_table
from sparsebench.kernels.block_attention import CONFIGS, block_sparse_attention, prepare, reference
from sparsebench.kernels.timing import _event_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--densities", default="0.05,0.5,1")
    a = ap.parse_args()
    heads, dim, s = 32, 128, a.tokens
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, s, dim, generator=gen).half().cuda() for _ in range(3))
    rows_out = []
    sdpa_ms = statistics.median(_event_ms(lambda: F.scaled_dot_product_attention(q, k, v)) for _ in range(5))
    flops = 4.0 * heads * s * s * dim
    print(f"SDPA {sdpa_ms:.3f} ms = {flops / sdpa_ms / 1e9:.0f} TFLOP/s", flush=True)
    for density in (float(x) for x in a.densities.split(",")):
        keep = block_table(s // BLOCK, density, gen).cuda()
        kept = float(keep.float().mean())
        sel = torch.tensor([0, keep.shape[0] - 1])
        ref, tok = reference(q, k, v, keep, BLOCK, sel)
        for cfg in CONFIGS:
            row = {"density": density, "kept": kept, "config": list(cfg)}
            try:
                lists = prepare(keep, BLOCK, cfg)
                out = block_sparse_attention(q, k, v, keep, BLOCK, cfg, lists)
                err = float((out[:, :, tok].float() - ref).norm() / ref.norm())
                if not err < 1e-2:
                    raise RuntimeError(f"rel. error {err:.2e}")
                ms = statistics.median(_event_ms(lambda: block_sparse_attention(q, k, v, keep, BLOCK, cfg, lists))
                                       for _ in range(5))
                row |= {"ms": ms, "tflops": flops * kept / ms / 1e9, "pct_ideal": 100 * sdpa_ms / ms * kept,
                        "rel_error": err}
                print(f"d{density:g} {str(cfg):38s} {ms:8.3f} ms {row['tflops']:5.0f} TFLOP/s "
                      f"{row['pct_ideal']:5.1f} % of ideal", flush=True)
            except Exception as e:  # noqa: BLE001 - a config that does not compile is reported, not fatal
                row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1][:160] if str(e).strip() else ''}"
                print(f"d{density:g} {str(cfg):38s} failed: {row['error']}", flush=True)
            rows_out.append(row)
    Path(a.out).write_text(json.dumps({"tokens": s, "heads": heads, "head_dim": dim, "sdpa_ms": sdpa_ms,
                                       "device": torch.cuda.get_device_name(), "rows": rows_out}, indent=1) + "\n")
    best = {}
    for r in rows_out:
        if "ms" in r and (r["density"] not in best or r["ms"] < best[r["density"]]["ms"]):
            best[r["density"]] = r
    for d, r in best.items():
        print(f"best at d{d:g}: {r['config']} {r['ms']:.3f} ms, {r['pct_ideal']:.1f} % of ideal")


if __name__ == "__main__":
    main()
