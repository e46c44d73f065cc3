"""Timing a sparse kernel against its dense twin, the same way for both.

Sound practice, in order: warm up (compilation, handles, autotuning stay out of
the numbers); rotate among copies of the inputs that together span more memory
than the caches, so a repeated call never finds its weights cached; interleave
dense and sparse repetitions so that drift (clocks, neighbours) hits both; take
the median of many repetitions.

On CUDA one repetition is the replay of a CUDA graph that cycles through the
copies for at least ``CALLS_PER_PASS`` calls (device events around the replay,
divided by the calls): a graph launch costs ~15 us, which spread over only the
3 copies of a 90 MB LLaMA MLP weight added ~6 us to every call, dense and
sparse alike, and squeezed their ratio towards 1. Cycling keeps every call's
weights out of the cache (consecutive calls use different copies spanning
more than the L2). This is
the time the GPU spends, without the Python launch gaps that a served model
also avoids with graphs. Kernels that cannot be captured fall back to events
around back-to-back eager calls (recorded as ``timing: events``). On CPU each
repetition is one call timed with ``perf_counter``, with the thread count pinned.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

Kernel = Callable[[int], torch.Tensor]  # kernel(i): run on copy i of the inputs


@dataclass
class Timing:
    dense_ms: float
    sparse_ms: float
    repeats: int
    method: str  # "perf_counter", "cuda_graph" or "events"
    extra_ms: float | None = None  # a second dense reference timed in the same interleaved passes


CALLS_PER_PASS = 64


def calls_for(copies: int, min_calls: int = CALLS_PER_PASS) -> int:
    """Calls in one timed pass: whole cycles over the copies, at least ``min_calls`` (CALLS_PER_PASS; kernels
    of milliseconds, whose launch is negligible, pass fewer)."""
    return copies * max(1, -(-min_calls // copies))


def copies_for(bytes_per_copy: int, rotate_mb: float, cap: int = 512) -> int:
    """How many copies of the inputs rotate through so that they span ``rotate_mb`` (at least 2)."""
    need = int(rotate_mb * 2**20 // max(bytes_per_copy, 1)) + 1
    return max(2, min(cap, need))


def time_pair(dense: Kernel, sparse: Kernel, copies: int, device: str, warmup: int, repeats: int,
              graph: bool = True, budget_s: float = 1.5, min_calls: int = CALLS_PER_PASS,
              extra: Kernel | None = None) -> Timing:
    """``extra``: another dense kernel (e.g. our Triton dense GEMV beside cuBLAS), timed in the same
    interleaved repetitions as the pair (CUDA only)."""
    if device == "cpu":
        if extra is not None:
            raise ValueError("an extra dense reference is timed on CUDA only")
        return _time_cpu(dense, sparse, copies, warmup, repeats)
    return _time_cuda(dense, sparse, copies, warmup, repeats, graph, budget_s, min_calls, extra)


def _time_cpu(dense: Kernel, sparse: Kernel, copies: int, warmup: int, repeats: int) -> Timing:
    for i in range(warmup):
        dense(i % copies)
        sparse(i % copies)
    td, ts = [], []
    for r in range(repeats):
        i = (warmup + r) % copies
        t0 = time.perf_counter()
        dense(i)
        t1 = time.perf_counter()
        sparse(i)
        t2 = time.perf_counter()
        td.append(t1 - t0)
        ts.append(t2 - t1)
    return Timing(statistics.median(td) * 1e3, statistics.median(ts) * 1e3, repeats, "perf_counter")


def _pass(fn: Kernel, copies: int, min_calls: int = CALLS_PER_PASS) -> Callable[[], None]:
    calls = calls_for(copies, min_calls)

    def run():
        for i in range(calls):
            fn(i % copies)
    return run


def _graphed(fn: Kernel, copies: int, min_calls: int = CALLS_PER_PASS):
    """A callable replaying one captured pass over all copies, or None if capture fails."""
    run = _pass(fn, copies, min_calls)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        run()  # warm-up outside capture (autotuning, workspace allocation)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(g):
            run()
    except Exception:  # noqa: BLE001 - some library kernels refuse capture; fall back to eager
        torch.cuda.synchronize()
        return None
    return g.replay


def _event_ms(fn: Callable[[], None]) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def median_event_ms(fn: Callable[[], None], repeats: int, warmup: int = 1) -> float:
    """Median over ``repeats`` calls of ``fn``'s CUDA-event time (ms), after ``warmup`` untimed calls: for
    calls long enough (whole forwards, large GEMMs) that their launch and Python overhead do not matter."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    return statistics.median(_event_ms(fn) for _ in range(repeats))


def graph_ms(fn: Kernel, copies: int, repeats: int = 10, min_calls: int = CALLS_PER_PASS) -> float:
    """Median ms per call of ``fn`` on CUDA, one repetition = one replayed graph pass cycling over the
    copies (events around eager passes if it cannot be captured): a quick measure for tuning."""
    replay = _graphed(fn, copies, min_calls) or _pass(fn, copies, min_calls)
    replay()
    return statistics.median(_event_ms(replay) / calls_for(copies, min_calls) for _ in range(repeats))


def _time_cuda(dense: Kernel, sparse: Kernel, copies: int, warmup: int, repeats: int, graph: bool,
               budget_s: float, min_calls: int = CALLS_PER_PASS, extra: Kernel | None = None) -> Timing:
    kernels = (dense, sparse) if extra is None else (dense, sparse, extra)
    runs, method = [], "cuda_graph" if graph else "events"
    for fn in kernels:
        replay = _graphed(fn, copies, min_calls) if graph else None
        if replay is None:
            method = "events"
            replay = _pass(fn, copies, min_calls)
        runs.append(replay)
    if method == "events":  # all the same way
        runs = [_pass(fn, copies, min_calls) for fn in kernels]
    first = max(_event_ms(run) for run in runs) / 1e3  # also the first warm-up
    for _ in range(max(0, min(warmup - 1, int(budget_s / 4 / max(first, 1e-9))))):
        for run in runs:
            run()
    torch.cuda.synchronize()
    repeats = max(5, min(repeats, int(budget_s / max(first, 1e-9) / 2)))
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, t in zip(runs, times):
            t.append(_event_ms(run) / calls_for(copies, min_calls))
    medians = [statistics.median(t) for t in times]
    return Timing(medians[0], medians[1], repeats, method, medians[2] if extra is not None else None)
