"""A pattern's FlexAttention BlockMask, built from its tile tables (``pattern.tiles``): key-block lists per
query tile, never a mask_mod evaluated over every block (``create_block_mask``)."""

from __future__ import annotations

import functools

import torch


def block_mask(pattern, device=None):
    """The FlexAttention BlockMask of ``pattern``: key-block lists from its tiles, its exact rule as mask_mod.

    Tiles kept whole are passed as *full* blocks (no mask_mod evaluated),
    tiles with some kept pairs as partial blocks, all other tiles are skipped.
    """
    from torch.nn.attention.flex_attention import BlockMask

    tiling = pattern.tiling()
    any_, full = pattern.tiles(tiling)
    partial = any_ & ~full

    # per table, kept block indices first, then the others, each in key order (a stable partition); the
    # partial and the full table in one pass (half the launches)
    table = torch.stack([partial, full])
    kept = table.to(torch.int32)
    kept_before = kept.cumsum(dim=-1, dtype=torch.int32) - kept
    counts = kept_before[..., -1] + kept[..., -1]
    col = torch.arange(table.shape[-1], dtype=torch.int32, device=table.device)
    slot = torch.where(table, kept_before, counts[..., None] + col - kept_before).long()
    order = torch.empty_like(kept_before).scatter_(-1, slot, col.expand_as(kept_before))
    (kv_num, full_num), (kv_idx, full_idx) = counts.to(device), order.to(device)
    # the query-side lists serve only the backward pass: under no_grad they are not built (torch >= the
    # versions whose from_kv_blocks has compute_q_blocks), which was most of a BlockMask's build time
    skip_q = {"compute_q_blocks": False} if not torch.is_grad_enabled() and _takes_compute_q_blocks() else {}
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=(tiling.q_tile, tiling.kv_block),
                                    mask_mod=pattern.mask_mod(tiling),
                                    seq_lengths=(pattern.budget.rows, pattern.budget.keys), **skip_q)


@functools.lru_cache(maxsize=1)
def _takes_compute_q_blocks() -> bool:
    import inspect

    from torch.nn.attention.flex_attention import BlockMask

    return "compute_q_blocks" in inspect.signature(BlockMask.from_kv_blocks).parameters
