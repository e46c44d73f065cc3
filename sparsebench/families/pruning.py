"""Post-training (one-shot) pruning: the contract and how one job runs.

A pruning method returns a boolean keep-mask per prunable layer. Methods that
only look at weights override :meth:`PruningMethod.prune_layer` (or
:meth:`PruningMethod.prune` when they compare across layers, as global
magnitude does). The core applies the masks through the shared mechanism in
``sparsebench.masks``, checks the measured sparsity layer by layer, and
evaluates the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from sparsebench.masks import apply_masks, check_target, sparsity_record
from sparsebench.method import Method
from sparsebench.targets import Target

FAMILY = "pruning"


@dataclass
class LayerToPrune:
    """One linear layer as a method sees it.

    ``weight`` is the layer's live weight tensor (out x in); a method that
    updates weights (SparseGPT) writes into it. ``inputs`` holds calibration
    statistics of the layer's inputs when the method asks for them.
    """

    name: str
    weight: torch.Tensor
    generator: torch.Generator
    inputs: object | None = None


class PruningMethod(Method):
    family: ClassVar[str] = FAMILY
    patterns: ClassVar[tuple[str, ...]] = ("unstructured", "n:m")
    # True: the core runs calibration data through the model block by block and
    # hands each layer its input statistics (``LayerToPrune.inputs``).
    needs_calibration: ClassVar[bool] = False
    # Which input statistics calibration collects besides ``||X_j||^2``: the Gram
    # matrix X X^T (SparseGPT) and per-window mean and variance (DSnoT).
    needs_gram: ClassVar[bool] = True
    needs_input_moments: ClassVar[bool] = False
    # False: the method spreads sparsity unevenly across layers (e.g. global
    # magnitude); the core then checks the total, not each layer.
    uniform_layer_sparsity: ClassVar[bool] = True

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement prune_layer or prune")

    def prune(self, layers: dict[str, nn.Module], target: Target, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Masks for all layers; the default prunes each layer on its own."""
        return {
            name: self.prune_layer(LayerToPrune(name, module.weight.data, generator), target)
            for name, module in layers.items()
        }


BASE = PruningMethod


def run(ctx) -> dict:
    model = ctx.timed("load", ctx.task.load_model)
    layers = ctx.task.prunable_layers(model)
    with torch.no_grad():
        if ctx.target.sparsity > 0:
            with ctx.timer("method"):
                if ctx.method.needs_calibration:
                    from sparsebench.calibration import prune_sequentially

                    masks = prune_sequentially(ctx, model, layers)
                else:
                    masks = ctx.method.prune(layers, ctx.target, ctx.generator)
                apply_masks(layers, masks)
            check_target(layers, ctx.target, per_layer=ctx.method.uniform_layer_sparsity)
        metrics, samples = ctx.timed("eval", ctx.task.evaluate_with_samples, model)
    return {
        "metrics": metrics,
        **({"samples": samples} if samples else {}),
        "sparsity": sparsity_record(layers, ctx.target),
    }
