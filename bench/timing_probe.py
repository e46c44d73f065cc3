"""Why a kernel timed alone and the same kernel timed by the suite differ (CUDA): one block-attention case
measured six ways, to find which part of the suite's method moves it.

    PYTHONPATH=$PWD python3 bench/timing_probe.py --out probe.json [--densities 0.05,0.5] [--tokens 32768]

The suite (``kernels.timing.time_pair``) replays CUDA graphs of the dense and the sparse kernel in
alternating passes over rotated input copies. Here the same Bench (``attention_cases.build_block_attention``:
the suite's tuned config, copies and tables) is also timed: in reversed order (sparse pass first); each kernel
alone (its graph replayed back to back); each alone as eager calls on one copy (how bench/sweep_attention.py
times); and interleaved with a 50 ms idle gap before each timed pass (if a light kernel runs slower right
after the heavy dense one, a clock or power state carried over is the cause, not the kernel). The SM clock
(MHz, NVML through torch.cuda.clock_rate, where available) is read after each way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from sparsebench.kernels.attention_cases import build_block_attention
from sparsebench.kernels.cases import Case, Env
from sparsebench.kernels.timing import _event_ms, _graphed, calls_for, graph_ms, median_event_ms, time_pair


def clock() -> float | None:
    try:
        return float(torch.cuda.clock_rate())
    except Exception:  # noqa: BLE001 - no NVML binding on this machine: the clock is not reported
        return None


def with_gap(dense, sparse, copies: int, reps: int = 10, gap_s: float = 0.05) -> tuple[float, float]:
    runs = [_graphed(dense, copies, 2), _graphed(sparse, copies, 2)]
    times = [[], []]
    for _ in range(reps):
        for run, t in zip(runs, times):
            torch.cuda.synchronize()
            time.sleep(gap_s)
            t.append(_event_ms(run) / calls_for(copies, 2))
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--densities", default="0.05,0.5")
    a = ap.parse_args()
    env = Env("cuda", torch.float16, 256.0, torch.Generator().manual_seed(0),
              torch.Generator(device="cuda").manual_seed(0))
    out = []
    for d in (float(x) for x in a.densities.split(",")):
        b = build_block_attention(Case("block_attention", "llama-7b", "attention", 0, 0, a.tokens, d), env)
        row = {"density": b.info["block_density"], "config": b.info["config"], "copies": b.copies}
        t = time_pair(b.dense, b.sparse, b.copies, "cuda", 10, 50, min_calls=2)
        row["suite"] = {"dense_ms": t.dense_ms, "sparse_ms": t.sparse_ms, "clock_mhz": clock()}
        t = time_pair(b.sparse, b.dense, b.copies, "cuda", 10, 50, min_calls=2)
        row["suite_reversed"] = {"dense_ms": t.sparse_ms, "sparse_ms": t.dense_ms, "clock_mhz": clock()}
        row["alone_graph"] = {"dense_ms": graph_ms(b.dense, b.copies, 15, min_calls=2),
                              "sparse_ms": graph_ms(b.sparse, b.copies, 15, min_calls=2),
                              "clock_mhz": clock()}
        row["alone_eager_one_copy"] = {"dense_ms": median_event_ms(lambda: b.dense(0), 10),
                                       "sparse_ms": median_event_ms(lambda: b.sparse(0), 15), "clock_mhz": clock()}
        dg, sg = with_gap(b.dense, b.sparse, b.copies)
        row["interleaved_50ms_gap"] = {"dense_ms": dg, "sparse_ms": sg, "clock_mhz": clock()}
        for way in ("suite", "suite_reversed", "alone_graph", "alone_eager_one_copy", "interleaved_50ms_gap"):
            w = row[way]
            w["pct_ideal"] = 100 * w["dense_ms"] / w["sparse_ms"] * row["density"]
        out.append(row)
        Path(a.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "tokens": a.tokens,
                                           "rows": out}, indent=1) + "\n")
    print(f"\n{'density':>8} {'way':24} {'dense ms':>9} {'sparse ms':>10} {'% ideal':>8} {'SM MHz':>7}")
    for row in out:
        for way in ("suite", "suite_reversed", "alone_graph", "alone_eager_one_copy", "interleaved_50ms_gap"):
            w = row[way]
            print(f"{row['density']:8.4f} {way:24} {w['dense_ms']:9.3f} {w['sparse_ms']:10.3f} {w['pct_ideal']:8.1f} "
                  f"{w['clock_mhz'] or float('nan'):7.0f}")


if __name__ == "__main__":
    main()
