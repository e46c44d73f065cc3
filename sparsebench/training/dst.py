"""Prune-and-regrow primitives of dynamic sparse training (SET, RigL, sparse momentum).

All of them keep exact counts: a layer that drops k active weights grows
exactly k inactive ones (or, with redistribution, the network as a whole grows
exactly what it dropped), so the global budget never drifts.
"""

from __future__ import annotations

import math

import torch

from sparsebench.training.masking import topk_mask


def drop_smallest(weight: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """The mask after removing the ``k`` active weights of smallest magnitude."""
    score = torch.where(mask, weight.detach().abs(), torch.full_like(weight, -math.inf))
    return topk_mask(score, int(mask.sum()) - k)


def grow_largest(kept: torch.Tensor, grow_score: torch.Tensor, k: int) -> torch.Tensor:
    """``kept`` plus the ``k`` positions outside it with the largest ``grow_score``."""
    score = torch.where(kept, torch.full_like(grow_score, -math.inf), grow_score.detach().float())
    return kept | topk_mask(score, k)


def prune_and_regrow(weight: torch.Tensor, mask: torch.Tensor, grow_score: torch.Tensor, k: int) -> torch.Tensor:
    """Drop the ``k`` smallest active weights, then grow the ``k`` best-scoring inactive positions.

    A position dropped in this update may be grown again (as in RigL's code);
    the kept count is unchanged.
    """
    k = min(k, int(mask.sum()), mask.numel() - int(mask.sum()) + k)
    return grow_largest(drop_smallest(weight, mask, k), grow_score, k)


def split_by_shares(total: int, shares: dict[str, float], capacity: dict[str, int]) -> dict[str, int]:
    """Integer amounts summing to ``total``, proportional to ``shares`` and at most ``capacity`` each.

    What a full layer cannot take goes to the others in proportion to their
    shares (sparse momentum's redistribution), the last units by largest remainder.
    """
    if total > sum(capacity.values()):
        raise ValueError(f"cannot place {total} weights into capacities summing to {sum(capacity.values())}")
    out = {k: 0 for k in shares}
    left = total
    open_ = [k for k in shares if capacity[k] > 0]
    while left > 0 and open_:
        weight = sum(max(shares[k], 0.0) for k in open_)
        want = {k: (left * max(shares[k], 0.0) / weight if weight > 0 else left / len(open_)) for k in open_}
        full = [k for k in open_ if out[k] + want[k] >= capacity[k]]
        if full:
            for k in full:
                left -= capacity[k] - out[k]
                out[k] = capacity[k]
            open_ = [k for k in open_ if k not in full]
            continue
        floors = {k: int(math.floor(want[k])) for k in open_}
        for k in open_:
            out[k] += floors[k]
        left -= sum(floors.values())
        for k in sorted(open_, key=lambda k: -(want[k] - floors[k]))[:left]:
            out[k] += 1
        left = 0
    return out
