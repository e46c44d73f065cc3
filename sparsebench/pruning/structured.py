"""Structured (width) pruning: whole rows and columns removed, so the model gets smaller and dense.

A structured method returns a :class:`StructuredPlan`: for each linear layer the
output rows and/or input columns it keeps, and a bias added to a layer's output
to compensate what the removed inputs contributed on average (FLAP's baseline
bias). The core applies it twice:

1. as masks (``W -> W * M`` through the shared mechanism, plus the bias), so the
   sparsity accounting and checks are the family's usual ones;
2. then :func:`compress` slices the weights: the model's linears shrink (fewer
   parameters, smaller matrices) and compute the same function as the masked
   model (up to float summation order), with ordinary dense kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from sparsebench.masks import SparsityMismatch, apply_masks, overall_sparsity


@dataclass
class StructuredPlan:
    keep_rows: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> bool (out_features,)
    keep_cols: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> bool (in_features,)
    bias: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (out_features,) added to its output
    # the largest unit the plan removes or keeps (one head group, one channel), as a fraction of all prunable
    # weights: how far the measured sparsity may sit from the target
    granularity: float = 0.0

    def masks(self, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
        """The plan as element masks (True = kept) for every layer it touches."""
        out = {}
        for name, mod in layers.items():
            rows = self.keep_rows.get(name)
            cols = self.keep_cols.get(name)
            if rows is None and cols is None:
                continue
            keep = torch.ones_like(mod.weight, dtype=torch.bool)
            if rows is not None:
                keep &= rows.to(keep.device).reshape(-1, 1)
            if cols is not None:
                keep &= cols.to(keep.device).reshape(1, -1)
            out[name] = keep
        return out


def _add_bias(mod: nn.Linear, extra: torch.Tensor) -> None:
    extra = extra.to(mod.weight.device, mod.weight.dtype)
    if mod.bias is None:
        mod.bias = nn.Parameter(extra.clone(), requires_grad=False)
    else:
        mod.bias.data += extra


def apply_as_masks(layers: dict[str, nn.Module], plan: StructuredPlan) -> None:
    """Mask the removed rows/columns and add the compensation biases (the model keeps its shapes)."""
    apply_masks(layers, plan.masks(layers))
    for name, b in plan.bias.items():
        _add_bias(layers[name], b)


@torch.no_grad()
def compress(layers: dict[str, nn.Module], plan: StructuredPlan) -> None:
    """Slice every planned layer to its kept rows and columns (masks baked in first)."""
    for name, mod in layers.items():
        rows, cols = plan.keep_rows.get(name), plan.keep_cols.get(name)
        if rows is None and cols is None:
            continue
        if parametrize.is_parametrized(mod, "weight"):
            parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
        w = mod.weight.data
        if rows is not None:
            w = w[rows.to(w.device)]
            if mod.bias is not None:
                mod.bias = nn.Parameter(mod.bias.data[rows.to(w.device)].clone(), requires_grad=False)
        if cols is not None:
            w = w[:, cols.to(w.device)]
        mod.weight = nn.Parameter(w.contiguous(), requires_grad=False)
        mod.out_features, mod.in_features = w.shape


def check_structured(layers: dict[str, nn.Module], target, plan: StructuredPlan) -> None:
    measured = overall_sparsity(layers)
    if abs(measured - target.sparsity) > plan.granularity + 1e-9:
        raise SparsityMismatch(f"structured plan removes {measured:.6f} of the prunable weights, target "
                               f"{target.sparsity:g} (allowed off by one unit: {plan.granularity:.6f})")


def parameter_count(layers: dict[str, nn.Module]) -> int:
    return sum(m.weight.numel() + (m.bias.numel() if m.bias is not None else 0) for m in layers.values())
