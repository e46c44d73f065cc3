"""Scores -> masks for conv and linear weights, on top of ``sparsebench.masks``.

``sparsebench.masks.mask_from_scores`` works on (out, in) matrices. A conv weight
(out, in, kh, kw) is viewed as a matrix whose rows are output channels and
whose columns run over (kh, kw, in), so that N:M groups of M consecutive
columns are M consecutive *input channels* at one kernel position: the layout
of the implicit GEMM that 2:4 sparse tensor cores accelerate (and the grouping
SR-STE uses for convolutions).
"""

from __future__ import annotations

import torch

from sparsebench.masks import _keep_topk_along_last, mask_from_scores
from sparsebench.targets import Pattern, Target


def as_rows(t: torch.Tensor) -> torch.Tensor:
    """(out, in, kh, kw) -> (out, kh*kw*in) with input channels innermost; 2-D unchanged."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1) if t.dim() == 4 else t.reshape(t.shape[0], -1)


def from_rows(m: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    if len(shape) == 4:
        out, cin, kh, kw = shape
        return m.reshape(out, kh, kw, cin).permute(0, 3, 1, 2).contiguous()
    return m.reshape(shape)


def group_dim(shape: torch.Size) -> int:
    """Length of the dimension N:M groups run along (input channels or input features)."""
    return shape[1]


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the ``k`` largest scores of a tensor (ties broken by position)."""
    return _keep_topk_along_last(scores.reshape(1, -1), int(k)).reshape(scores.shape)


def layer_topk(scores: dict[str, torch.Tensor], keep: dict[str, int]) -> dict[str, torch.Tensor]:
    """Per layer, keep the ``keep[name]`` highest scores."""
    return {k: topk_mask(s, keep[k]) for k, s in scores.items()}


def global_topk(scores: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Keep the ``k`` highest scores over all layers together (SNIP, GraSP, SynFlow, global magnitude)."""
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).float() for n in names])
    keep = topk_mask(flat, k)
    out, i = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[i:i + size].reshape(scores[n].shape)
        i += size
    return out


def random_mask(shape: torch.Size, k: int, generator: torch.Generator) -> torch.Tensor:
    """Exactly ``k`` kept positions drawn uniformly at random."""
    return topk_mask(torch.rand(shape, generator=generator), k)


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` highest scores in every group of ``m`` input channels (see module docstring)."""
    rows = mask_from_scores(as_rows(scores), Target(1.0 - n / m, Pattern("n:m", n=n, m=m)))
    return from_rows(rows, scores.shape)


def nm_kept_per_group(mask: torch.Tensor, m: int) -> torch.Tensor:
    rows = as_rows(mask)
    return rows.reshape(rows.shape[0], -1, m).sum(-1)

