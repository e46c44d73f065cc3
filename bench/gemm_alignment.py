"""Is FLAP's smaller model slow because its MLP widths are unaligned? Time the MLP GEMMs of the exact kept widths
against the same widths rounded to multiples of 128 (docs/pruning.md).

For each MLP width k a block keeps, a prefill of T tokens runs gate and up (T x hidden) @ (hidden x k) and down
(T x k) @ (k x hidden) in nn.Linear's layout (weights out x in). Input: the JSON that
``sparsebench bench structured --json`` writes (its FLAP rows carry ``mlp_widths`` per block); plus a sweep of
widths near a given k aligned to exactly 1, 2, 4, ..., 128::

    PYTHONPATH=$PWD python3 bench/gemm_alignment.py --structured rows.json --hidden 4096 --tokens 2048

Prints, per FLAP row, the summed MLP GEMM time of all blocks at the exact widths and at widths rounded up to a
multiple of 128 (more arithmetic, aligned), and the sweep.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from sparsebench.kernels.timing import median_event_ms


def mlp_ms(k: int, hidden: int, tokens: int, repeats: int, dtype) -> float:
    """gate + up + down GEMMs of one block whose MLP keeps ``k`` channels."""
    x = torch.randn(tokens, hidden, device="cuda", dtype=dtype)
    wg = torch.randn(k, hidden, device="cuda", dtype=dtype) * 0.02
    wd = torch.randn(hidden, k, device="cuda", dtype=dtype) * 0.02
    h = torch.randn(tokens, k, device="cuda", dtype=dtype)

    def run():
        F.linear(x, wg)
        F.linear(x, wg)
        F.linear(h, wd)

    return median_event_ms(run, repeats, warmup=3)


def up(k: int, n: int) -> int:
    return -(-k // n) * n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--structured", help="JSON from `sparsebench bench structured --json`")
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--sweep", type=int, default=8803, help="width for the alignment sweep")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", help="also write the numbers to this JSON file")
    a = p.parse_args()
    dt = torch.float16
    out = {"gpu": torch.cuda.get_device_name(), "hidden": a.hidden, "tokens": a.tokens, "rows": [], "sweep": []}
    cache: dict[int, float] = {}

    def cost(k):
        if k not in cache:
            cache[k] = mlp_ms(k, a.hidden, a.tokens, a.repeats, dt)
        return cache[k]

    if a.structured:
        doc = json.load(open(a.structured))
        for r in doc["rows"]:
            if not r["method"].startswith("flap") and r["method"] != "dense":
                continue
            widths = r["mlp_widths"]
            exact = sum(cost(k) for k in widths)
            rounded = sum(cost(up(k, 128)) for k in widths)
            out["rows"].append({"variant": r["variant"], "widths": widths, "exact_ms": exact,
                                "rounded_up_128_ms": rounded,
                                "unaligned_blocks": sum(k % 8 != 0 for k in widths)})
            print(f"{r['variant']:<58} MLP GEMMs over {len(widths)} blocks: exact widths {exact:7.2f} ms, rounded up "
                  f"to 128 {rounded:7.2f} ms; widths not multiples of 8: {out['rows'][-1]['unaligned_blocks']}",
                  flush=True)
    for n in (1, 2, 4, 8, 16, 32, 64, 128):
        m = round(a.sweep / n)
        m += 1 if m % 2 == 0 and n < 128 else 0  # an odd multiple: aligned to n, not to 2n
        k = m * n
        ms = cost(k)
        out["sweep"].append({"align": n, "width": k, "ms": ms, "tflops": 3 * 2 * a.tokens * a.hidden * k / ms / 1e9})
        print(f"width {k:>6} (aligned to {n:>3}): {ms:7.3f} ms, {out['sweep'][-1]['tflops']:6.1f} TFLOP/s", flush=True)
    if a.out:
        json.dump(out, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
