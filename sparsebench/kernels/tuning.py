"""Choosing a kernel's configuration per shape by measurement, with no favourite.

Two rounds, both timed as the suite times a row (replays of a CUDA-graph pass that cycles over input copies
spanning more than the L2, so neither cached weights nor Python launch gaps decide):

1. screen: every candidate once (``graph_ms``, the median of 10 passes); a candidate that does not compile
   (resources), raises, or whose result differs from the first candidate's (rel. error >= 1e-2) is dropped;
2. final: the fastest few (``FINALISTS``, those within ``WITHIN`` of the fastest) timed again in
   ``ROUNDS`` interleaved rounds, the way the suite interleaves dense and sparse, and the lowest median wins.

Why no margin in favour of a listed default: a difference inside one pass's noise would then be decided by
list order; here it is decided by interleaved repetitions.
"""

from __future__ import annotations

import statistics
from typing import Callable, Sequence

FINALISTS = 4
WITHIN = 1.15  # finalists: within 15 % of the fastest screened time
ROUNDS = 12


def pick_fastest(configs: Sequence, screen: Callable, final: Callable, finalists: int = FINALISTS,
                 within: float = WITHIN):
    """The config with the lowest final time. ``screen(cfg)`` -> ms (raising = not a candidate);
    ``final(cfgs)`` -> one median ms per cfg, timed interleaved. Ties go to the earlier config."""
    screened = []
    for n, cfg in enumerate(configs):
        try:
            ms = float(screen(cfg))
        except Exception:  # noqa: BLE001 - a config that does not compile (resources) is just not a candidate
            continue
        screened.append((ms, n, cfg))
    if not screened:
        raise RuntimeError(f"no candidate of {len(configs)} ran (first: {configs[0]!r})")
    screened.sort(key=lambda t: (t[0], t[1]))
    top = [t for t in screened[:finalists] if t[0] <= screened[0][0] * within]
    if len(top) == 1:
        return top[0][2]
    times = final([t[2] for t in top])
    return min(zip(times, (t[1] for t in top), (t[2] for t in top)), key=lambda t: (t[0], t[1]))[2]


def interleaved_rounds(fns: Sequence[Callable[[int], object]], copies: int, rounds: int = ROUNDS,
                       rotate: bool = False) -> list[list[float]]:
    """Ms per call of each ``fn(i)`` (copy i of the inputs), one value per round: each round replays one
    captured pass of every fn in turn (CUDA); ``rotate``: the order shifts by one each round, so no fn always
    follows the same one."""
    from sparsebench.kernels.timing import _event_ms, _graphed, _pass, calls_for

    replays = [_graphed(fn, copies) or _pass(fn, copies) for fn in fns]
    for replay in replays:
        replay()
    times: list[list[float]] = [[] for _ in replays]
    order = list(range(len(replays)))
    for r in range(rounds):
        shift = r % len(order) if rotate else 0
        for j in order[shift:] + order[:shift]:
            times[j].append(_event_ms(replays[j]) / calls_for(copies))
    return times


def interleaved_ms(fns: Sequence[Callable[[int], object]], copies: int, rounds: int = ROUNDS) -> list[float]:
    """Median ms per call of each ``fn(i)`` over ``rounds`` interleaved rounds (:func:`interleaved_rounds`)."""
    return [statistics.median(t) for t in interleaved_rounds(fns, copies, rounds)]


def tune(run: Callable, configs: Sequence, device: str, copies: int):
    """The fastest config of ``run(cfg, i)`` on this shape (on the CPU, i.e. the Triton interpreter in tests:
    the first, since any config computes the same)."""
    if device == "cpu":
        return configs[0]
    from sparsebench.kernels.timing import graph_ms

    return pick_fastest(configs, checked(run, lambda cfg: graph_ms(lambda i: run(cfg, i), copies)),
                        lambda cfgs: interleaved_ms([lambda i, c=c: run(c, i) for c in cfgs], copies))


def checked(run: Callable, timer: Callable) -> Callable:
    """A screen: ``timer(cfg)`` for a candidate whose result on copy 0 matches the first screened candidate's
    (rel. error < 1e-2); raises for one that differs (so it is dropped)."""
    first: list = []

    def screen(cfg):
        out = run(cfg, 0).float()  # also compiles it
        if not first:
            first.append((cfg, out))
        elif not float((out - first[0][1]).norm() / first[0][1].norm().clamp_min(1e-30)) < 1e-2:
            raise RuntimeError(f"config {cfg} differs from {first[0][0]}")
        return timer(cfg)
    return screen
