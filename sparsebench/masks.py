"""The one mask mechanism every family shares.

A mask is a parametrization on a module's weight (``torch.nn.utils.parametrize``),
so every forward sees ``W * M`` and optimizers need no special case. Masks are
boolean *keep* masks: ``True`` keeps a weight, ``False`` zeroes it.

This module also turns scores into masks for each pattern, measures sparsity
layer by layer and refuses a result whose sparsity misses its target.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from sparsebench.targets import Target


class WeightMask(nn.Module):
    """Parametrization ``W -> W * M`` with a fixed boolean mask buffer."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask.to(weight.dtype)


def stored_weight(module: nn.Module) -> torch.Tensor:
    """The weight as stored, without computing a mask's W * M (its shape and size are the same)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def _mask_of(module: nn.Module) -> WeightMask | None:
    if parametrize.is_parametrized(module, "weight"):
        for p in module.parametrizations.weight:
            if isinstance(p, WeightMask):
                return p
    return None


def apply_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Attach (or replace) ``mask`` on ``module.weight``. Reads the stored weight, never ``module.weight`` of a
    masked layer (that computes W * M: 0.1 s per 7B layer on a host CPU)."""
    existing = _mask_of(module)
    if existing is not None and existing.mask is mask:
        return  # already this mask (the pipeline applied it block by block)
    weight = stored_weight(module)
    if mask.shape != weight.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(weight.shape)}")
    if existing is not None:
        existing.mask.copy_(mask.to(torch.bool).to(existing.mask.device))
    else:
        parametrize.register_parametrization(module, "weight", WeightMask(mask.to(weight.device)), unsafe=True)


def apply_masks(layers: dict[str, nn.Module], masks: dict[str, torch.Tensor]) -> None:
    missing = set(masks) - set(layers)
    if missing:
        raise KeyError(f"masks for unknown layers: {sorted(missing)[:5]}")
    for name, mask in masks.items():
        apply_mask(layers[name], mask)


def get_mask(module: nn.Module) -> torch.Tensor | None:
    m = _mask_of(module)
    return None if m is None else m.mask


# ---------------------------------------------------------------- scores -> masks

def _keep_topk_along_last(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Boolean mask keeping the ``n_keep`` largest entries along the last dim.

    Ties are broken by position (stable sort), so equal scores give the same
    mask on every run.
    """
    keep = torch.zeros_like(scores, dtype=torch.bool)
    if n_keep <= 0:
        return keep
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    keep.scatter_(-1, order[..., :n_keep], True)
    return keep


def mask_from_scores(scores: torch.Tensor, target: Target, per: str = "layer") -> torch.Tensor:
    """Keep the highest scores so that the mask meets ``target`` exactly.

    ``per`` says where scores are compared for unstructured targets: ``"layer"``
    (all entries of the weight, as layer-wise magnitude pruning) or ``"row"``
    (each output row separately, as Wanda). N:M targets always compare inside
    each group of M consecutive input weights of a row.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be 2-D (out, in), got shape {tuple(scores.shape)}")
    rows, cols = scores.shape
    kind = target.pattern.kind
    if kind == "unstructured":
        if per == "layer":
            n_keep = scores.numel() - round(target.sparsity * scores.numel())
            return _keep_topk_along_last(scores.reshape(1, -1), n_keep).reshape(rows, cols)
        if per == "row":
            n_keep = cols - round(target.sparsity * cols)
            return _keep_topk_along_last(scores, n_keep)
        raise ValueError(f"per={per!r}; allowed: 'layer', 'row'")
    if kind == "n:m":
        n, m = target.pattern.n, target.pattern.m
        if cols % m:
            raise ValueError(f"N:M pattern {target.pattern} needs the input dimension ({cols}) divisible by {m}")
        grouped = scores.reshape(rows, cols // m, m)
        return _keep_topk_along_last(grouped, n).reshape(rows, cols)
    raise NotImplementedError(f"mask_from_scores does not handle pattern {target.pattern} yet")


# ---------------------------------------------------------------- measuring

def layerwise_sparsity(layers: dict[str, nn.Module]) -> dict[str, float]:
    """Fraction of masked-out weights per layer (the method's decision)."""
    out = {}
    for name, module in layers.items():
        mask = get_mask(module)
        out[name] = 0.0 if mask is None else 1.0 - mask.float().mean().item()
    return out


def overall_sparsity(layers: dict[str, nn.Module]) -> float:
    zeros = total = 0
    for module in layers.values():
        mask = get_mask(module)
        total += stored_weight(module).numel()
        zeros += 0 if mask is None else int((~mask).sum())
    return zeros / max(total, 1)


def sparsity_record(layers: dict[str, nn.Module], target: Target) -> dict:
    """What every result stores about sparsity: the request and what was measured, per layer and overall."""
    return {
        "target": target.sparsity,
        "pattern": str(target.pattern),
        "measured": overall_sparsity(layers),
        "layers": layerwise_sparsity(layers),
    }


def nm_violations(mask: torch.Tensor, n: int, m: int) -> int:
    """Number of groups of ``m`` input weights that keep more than ``n``."""
    rows, cols = mask.shape
    kept = mask.reshape(rows, cols // m, m).sum(-1)
    return int((kept > n).sum())


class SparsityMismatch(RuntimeError):
    pass


def check_plan(layers: dict[str, nn.Module], layer_targets: dict[str, Target], target: Target) -> None:
    """Refuse a per-layer plan whose weighted mean sparsity misses ``target`` (before anything is pruned)."""
    sizes = {name: stored_weight(module).numel() for name, module in layers.items()}
    planned = sum(layer_targets[n].sparsity * size for n, size in sizes.items()) / max(sum(sizes.values()), 1)
    widest = max((stored_weight(module).shape[1] for module in layers.values()), default=1)
    if abs(planned - target.sparsity) > 1.0 / widest + 1e-9:
        raise SparsityMismatch(f"the per-layer plan averages sparsity {planned:.6f} over the model's weights, "
                               f"target {target.label}")


def check_target(layers: dict[str, nn.Module], target: Target, per_layer: bool = True,
                 layer_targets: dict[str, Target] | None = None) -> None:
    """Fail loudly if the measured sparsity misses ``target`` by more than rounding.

    ``per_layer``: every layer must meet the target (a method may round the number
    of zeros per output row, so each layer may differ by one weight per row,
    1/cols). Otherwise (methods that allocate sparsity across layers, such as
    global magnitude) only the total over all layers must meet it, within one
    weight per row of the widest layer. ``layer_targets`` (a method's per-layer
    plan, e.g. OWL): each layer must meet its own target and the total the
    overall one. N:M groups are checked in every layer.
    """
    problems = []
    zeros = total = 0
    widest = 1
    for name, module in layers.items():
        mask = get_mask(module)
        own = layer_targets[name] if layer_targets else target
        rows, cols = stored_weight(module).shape[:2]
        total += rows * cols
        widest = max(widest, cols)
        if mask is None:
            if own.sparsity > 0 and (per_layer or layer_targets):
                problems.append(f"{name}: no mask (sparsity 0, target {own.sparsity:g})")
            continue
        zeros += int((~mask).sum())
        measured = 1.0 - mask.float().mean().item()
        if own.pattern.kind == "n:m":
            bad = nm_violations(mask, own.pattern.n, own.pattern.m)
            if bad:
                problems.append(f"{name}: {bad} groups keep more than {own.pattern.n} of {own.pattern.m}")
        elif (per_layer or layer_targets) and abs(measured - own.sparsity) > 1.0 / cols + 1e-9:
            problems.append(f"{name}: measured sparsity {measured:.6f}, target {own.sparsity:g}")
    if (not per_layer or layer_targets) and total and abs(zeros / total - target.sparsity) > 1.0 / widest + 1e-9:
        problems.append(f"overall: measured sparsity {zeros / total:.6f}, target {target.sparsity:g}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} layers)" if len(problems) > 5 else "")
        raise SparsityMismatch(f"measured sparsity misses the target {target.label}: {shown}")
