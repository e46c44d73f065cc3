"""Turning a budget into keep-masks: fixed windows, and top-scoring key blocks per query group.

Shared by the methods so every one of them meets the same budget the same way:
- :func:`solve_window` finds the width of a fixed window (plus sinks) whose
  kept pairs over the rows come closest to the budget;
- :func:`select_blocks` keeps, for each group of rows (a query block in
  prefill, one row in decode), its local region plus the highest-scoring key
  blocks before it, as many as the cumulative allowance pays for.
Both return a :class:`~sparsebench.attention.pattern.BlockPattern` (the
decision at block granularity); the executors add causality.
"""

from __future__ import annotations

import functools

import torch

from sparsebench.attention.budget import Budget, units_per_row
from sparsebench.attention.pattern import BlockPattern


def positions(budget: Budget, device=None) -> torch.Tensor:
    return torch.arange(budget.q0, budget.q0 + budget.rows, device=device)


def window_pairs(budget: Budget, width: int) -> int:
    """Pairs kept by a window of ``width`` keys ending at each row (the row included)."""
    return int(torch.clamp(positions(budget) + 1, max=width).sum().item())


def solve_window(budget: Budget, pairs: float | None = None) -> int:
    """The smallest window width whose kept pairs reach ``pairs`` (default: the whole budget)."""
    goal = budget.density * budget.causal_pairs() if pairs is None else pairs
    lo, hi = 1, budget.keys
    while lo < hi:
        mid = (lo + hi) // 2
        if window_pairs(budget, mid) >= goal:
            hi = mid
        else:
            lo = mid + 1
    # the width just below may land closer to the goal
    if lo > 1 and abs(window_pairs(budget, lo - 1) - goal) < abs(window_pairs(budget, lo) - goal):
        lo -= 1
    return lo


def window_pattern(budget: Budget, width: int, batch: int, heads: int, sinks: int = 0, device=None) -> BlockPattern:
    """Key j is kept by row i when i - width < j <= i, or j < sinks (kernel key blocks: the query block)."""
    start = (positions(budget, device) - width + 1).clamp(min=0)
    return BlockPattern(budget, max(budget.query_block, 16), batch, heads, local_start=start, sinks=sinks)


def group_max(x: torch.Tensor, group: int) -> torch.Tensor:
    """(..., rows, K) -> (..., groups, K): the maximum over the rows of each group."""
    rows = x.shape[-2]
    pad = (-rows) % group
    if pad:
        x = torch.cat([x, x[..., -1:, :].expand(*x.shape[:-2], pad, x.shape[-1])], dim=-2)
    return x.reshape(*x.shape[:-2], -1, group, x.shape[-1]).amax(dim=-2)


def _key_blocks(k: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, S, D) -> (B, H, blocks, block, D); a ragged last block is padded with copies of the last key
    (its min and max unchanged)."""
    b, h, s, d = k.shape
    pad = (-s) % block
    kp = torch.cat([k, k[:, :, -1:].expand(b, h, pad, d)], dim=2) if pad else k
    return kp.reshape(b, h, -1, block, d)


def block_stats(k: torch.Tensor, block: int):
    """Per key block: elementwise min and max of the keys, and their mean (B, H, blocks, D)."""
    kb = _key_blocks(k, block)
    return kb.amin(dim=3), kb.amax(dim=3), kb.mean(dim=3)


def block_min_max(k: torch.Tensor, block: int):
    """Per key block: elementwise min and max of the keys (B, H, blocks, D), in one pass (Quest's pages;
    the same values as :func:`block_stats`' first two, without its mean)."""
    return torch.aminmax(_key_blocks(k, block), dim=3)


def select_blocks(scores: torch.Tensor, budget: Budget, block: int, local: int = 0) -> BlockPattern:
    """Keep each row group's local region and its top-scoring earlier key blocks, within the budget.

    ``scores``: (B, H, groups, key_blocks), higher = more important (+inf:
    always first). Row i always keeps keys from the start of the key block
    holding its group's first row (or from ``i - local + 1`` when that is
    earlier) up to itself. A group may
    choose among the key blocks that end before the first row's local region;
    the number it keeps comes from the cumulative allowance
    (:func:`sparsebench.attention.budget.units_per_row`).
    """
    b, h = scores.shape[:2]
    if budget.density >= 1:  # the whole causal triangle
        return BlockPattern(budget, block, b, h, local_start=torch.zeros(budget.rows, dtype=torch.long))
    region_start, candidate, n = _selection_plan(budget, block, local, scores.shape[-1], scores.device)
    nb = scores.shape[-1]
    ranked = scores.masked_fill(~candidate, float("-inf"))
    order = ranked.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(nb, device=order.device).expand_as(order))
    keep_blocks = (rank < n[:, None]) & candidate
    return BlockPattern(budget, block, b, h, blocks=keep_blocks, local_start=region_start)


@functools.lru_cache(maxsize=32)
def _selection_plan(budget: Budget, block: int, local: int, key_blocks: int, device):
    """What :func:`select_blocks` needs besides the scores, on ``device``: every row's local-region start,
    each group's candidate blocks (groups, key_blocks) and how many of them it keeps. It depends on the
    budget alone, so the layers of one forward share it (computed on the host once, copied once)."""
    g = budget.row_block
    pos = positions(budget)
    idx = torch.arange(budget.rows) // g
    # the block holding the group's first row starts every row's local region (the diagonal tile)
    region_start = ((pos[::g] // block) * block)[idx]
    if local:
        region_start = torch.minimum(region_start, (pos - local + 1).clamp(min=0))
    first_per_row = pos + 1 - region_start
    allowance = budget.pairs_per_row()
    groups = -(-budget.rows // g)
    allowance_g = torch.zeros(groups, dtype=torch.long).index_add_(0, idx, allowance)
    first_g = torch.zeros(groups, dtype=torch.long).index_add_(0, idx, first_per_row)
    rows_g = torch.bincount(idx, minlength=groups)
    available = region_start[::g] // block  # blocks wholly before the group's first local region: exact costs
    n = units_per_row(allowance_g, first_g, block * rows_g, available)
    candidate = torch.arange(key_blocks)[None, :] < available[:, None]  # (groups, key_blocks)
    return region_start.to(device), candidate.to(device), n.to(device)
