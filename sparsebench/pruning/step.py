"""The pruning step of a job: masks from the method, applied, checked against the targets, recorded.

``sparsebench run`` (the family's job) and ``sparsebench bench prune`` both call
:func:`prune_model`, so a hook added here reaches both.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebench.pruning.pipeline import dense_statistics, prune_sequentially
from sparsebench.masks import apply_masks, check_target, sparsity_record
from sparsebench.pruning.structured import apply_as_masks, check_structured, compress, parameter_count


@torch.no_grad()
def prune_model(ctx, model: nn.Module, layers: dict[str, nn.Module], offload: bool = False) -> dict:
    """Prune ``layers`` of ``model`` for ``ctx.target``; returns the result's ``sparsity`` record
    (with ``layer_targets`` when the method planned per-layer targets, ``structured`` when it removed
    whole rows and columns) and the method's ``record()``. ``offload``: the decoder blocks stay on the
    host and move to the device one at a time (``sparsebench.pruning.pipeline.prune_sequentially``)."""
    method, target = ctx.method, ctx.target
    if getattr(method, "structured", False) and target.sparsity > 0:
        return _prune_structured(ctx, model, layers, offload)
    layer_targets = None
    compensation: dict[str, dict] = {}
    if target.sparsity > 0:
        with ctx.timer("method"):
            if method.calibrates:
                masks, layer_targets = prune_sequentially(ctx, model, layers, offload=offload,
                                                          compensation=compensation)
            else:
                masks = method.prune(layers, target, ctx.generator)
            apply_masks(layers, masks)
        record_peak_gpu(ctx)
        check_target(layers, target, per_layer=method.uniform_layer_sparsity, layer_targets=layer_targets)
    record = sparsity_record(layers, target)
    if layer_targets is not None:
        record["layer_targets"] = {name: t.sparsity for name, t in layer_targets.items()}
    if compensation:
        record["eora"] = eora_record(compensation, layers)
        ctx.log(f"EoRA rank {method.eora_rank}: +{record['eora']['parameters_added']} parameters, "
                f"activation-weighted error x{record['eora']['error_ratio_mean']:.3f} per layer (mean)")
    return {"sparsity": record, "method_record": method.record()}


def eora_record(compensation: dict[str, dict], layers: dict[str, nn.Module]) -> dict:
    """Added parameters (against the prunable layers' dense count) and each layer's activation-weighted
    error after / before compensation."""
    added = sum(c["parameters"] for c in compensation.values())
    dense = sum(m.weight.numel() for m in layers.values())
    ratios = {n: c["error_after"] / c["error_before"] if c["error_before"] > 0 else 1.0
              for n, c in compensation.items()}
    return {"rank": max(c["rank"] for c in compensation.values()), "parameters_added": added,
            "parameters_added_fraction": added / dense, "error_ratio_mean": sum(ratios.values()) / len(ratios),
            "error_ratio": ratios}


def record_peak_gpu(ctx) -> None:
    if ctx.device.type == "cuda":
        ctx.extra["peak_gpu_mb_method"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20


def _prune_structured(ctx, model: nn.Module, layers: dict[str, nn.Module], offload: bool) -> dict:
    """Plan on dense statistics, apply as masks (checked and recorded), then shrink the model."""
    method, target = ctx.method, ctx.target
    with ctx.timer("method"):
        blocks, dense = dense_statistics(ctx, model, layers, with_moments=True, offload=offload)
        plan = method.plan_structure(model, blocks, dense, target)
        apply_as_masks(layers, plan)
    record_peak_gpu(ctx)
    check_structured(layers, target, plan)
    record = sparsity_record(layers, target)
    before = parameter_count(layers)
    compress(layers, plan)
    record["structured"] = {
        "parameters_before": before,
        "parameters_after": parameter_count(layers),
        "shapes": {name: list(mod.weight.shape) for name, mod in layers.items()},
    }
    ctx.log(f"structured: {before} -> {record['structured']['parameters_after']} parameters in the prunable layers")
    return {"sparsity": record, "method_record": method.record()}
