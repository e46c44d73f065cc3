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
    grow_score = grow_score.detach().float().to(kept.device)  # a score drawn on the host (SET's random)
    score = torch.where(kept, torch.full_like(grow_score, -math.inf), grow_score)
    return kept | topk_mask(score, k)


def prune_and_regrow(weight: torch.Tensor, mask: torch.Tensor, grow_score: torch.Tensor, k: int) -> torch.Tensor:
    """Drop the ``k`` smallest active weights, then grow the ``k`` best-scoring inactive positions.

    A position dropped in this update may be grown again (as in RigL's code);
    the kept count is unchanged.
    """
    k = min(k, int(mask.sum()), mask.numel() - int(mask.sum()) + k)
    return grow_largest(drop_smallest(weight, mask, k), grow_score, k)


def momentum_regrowth(removed: dict[str, int], shares: dict[str, float], capacity: dict[str, int],
                      fill: float = 0.99, rounds: int = 1000) -> dict[str, int]:
    """How many weights each layer regrows: sparse momentum's redistribution, with an exact total.

    As in the authors' code (``calc_growth_redistribution``): a layer's raw
    amount is ``ceil(share * total removed)`` (shares normalised to sum to 1),
    so every layer with a positive share regrows at least one weight; a layer
    may fill at most ``fill`` of its capacity (its empty slots after pruning),
    and what it cannot take is spread evenly over all layers, repeated until
    nothing is left over. The authors then floor the amounts and correct the
    drift of the total over later updates; we keep the total exact at once:
    the excess is taken from the largest amounts, a shortfall goes to the
    layers with the largest shares that still have room.
    """
    total = sum(removed.values())
    if total > sum(capacity.values()):
        raise ValueError(f"cannot place {total} weights into capacities summing to {sum(capacity.values())}")
    norm = sum(max(v, 0.0) for v in shares.values())
    share = {k: (max(v, 0.0) / norm if norm > 0 else 1.0 / len(shares)) for k, v in shares.items()}
    amount = {k: float(math.ceil(share[k] * total)) for k in shares}
    for _ in range(rounds):
        residual = 0.0
        for k in amount:
            if amount[k] > fill * capacity[k]:
                residual += amount[k] - fill * capacity[k]
                amount[k] = fill * capacity[k]
        if residual <= 0:
            break
        for k in amount:
            amount[k] += residual / len(amount)
    out = {k: min(int(math.floor(v)), capacity[k]) for k, v in amount.items()}
    drift = sum(out.values()) - total
    for k in sorted(out, key=lambda k: -out[k]):  # too many: trim the largest
        if drift <= 0:
            break
        take = min(drift, out[k] - min(out[k], 1))
        out[k] -= take
        drift -= take
    for k in sorted(out, key=lambda k: -share[k]):  # too few: largest shares with room first
        if drift >= 0:
            break
        give = min(-drift, capacity[k] - out[k])
        out[k] += give
        drift += give
    return out
