"""Post-training (one-shot) pruning: the contract and how one job runs.

A pruning method returns a boolean keep-mask per prunable layer. Methods that
only look at weights override :meth:`PruningMethod.prune_layer` (or
:meth:`PruningMethod.prune` when they compare across layers, as global
magnitude does). The core applies the masks through the shared mechanism in
``sparsebench.masks``, checks the measured sparsity layer by layer, and
evaluates the task.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import ClassVar

import torch
from torch import nn

from sparsebench.lm.zeroshot import merge_zeroshot
from sparsebench.method import Method
from sparsebench.params import OMIT_DEFAULT
from sparsebench.placement import decide_offload, streamed
from sparsebench.pruning.layer import LayerToPrune
from sparsebench.pruning.step import prune_model
from sparsebench.targets import Target

FAMILY = "pruning"
__all__ = ["FAMILY", "BASE", "LayerToPrune", "PruningMethod", "run"]


def _with_compensation(method: type, params: type) -> type:
    """``params`` plus ``eora_rank``: every pruning method accepts EoRA compensation
    (``sparsebench.pruning.eora``); 0, the default, is left out of run ids."""
    own_check = getattr(params, "check", None)

    def check(self):
        if not isinstance(self.eora_rank, int) or self.eora_rank < 0:
            raise ValueError(f"eora_rank={self.eora_rank!r} must be an integer >= 0 (0: no compensation)")
        if self.eora_rank and method.structured:
            raise ValueError(f"eora_rank={self.eora_rank}: {method.name} removes whole rows and columns; EoRA "
                             "compensates a layer that keeps its shape (allowed: 0)")
        if self.eora_rank and method.prune is not PruningMethod.prune:
            raise ValueError(f"eora_rank={self.eora_rank}: {method.name} prunes all layers together, EoRA needs "
                             "the block-by-block pipeline of methods that prune one layer at a time (allowed: 0)")
        if own_check is not None:
            own_check(self)

    frozen = params.__dataclass_params__.frozen
    return dataclasses.make_dataclass(
        params.__name__, [("eora_rank", int, dataclasses.field(default=0, metadata=OMIT_DEFAULT))],
        bases=(params,), namespace={"check": check, "_declared": params, "__module__": params.__module__,
                                    "__qualname__": params.__qualname__}, frozen=frozen)


class PruningMethod(Method):
    family: ClassVar[str] = FAMILY

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a subclass that inherits its parent's Params gets its own copy (the checks name the method); one that
        # declares its own (a variant adding a field to its parent's) keeps its fields
        params = vars(cls.Params).get("_declared", cls.Params)
        cls.Params = _with_compensation(cls, params)
    patterns: ClassVar[tuple[str, ...]] = ("unstructured", "n:m")
    # True: the core runs calibration data through the model block by block and
    # hands each layer its input statistics (``LayerToPrune.inputs``).
    needs_calibration: ClassVar[bool] = False
    # Which input statistics calibration collects besides ``||X_j||^2``: the Gram
    # matrix X X^T (SparseGPT) and per-window mean and variance (DSnoT).
    needs_gram: ClassVar[bool] = True
    needs_input_moments: ClassVar[bool] = False
    # True: prune_layer rewrites every weight it is handed (SparseGPT's updates). Offloaded pruning then
    # copies each block back to the host without first checking which weights stayed unchanged (that check
    # holds a device copy of the block). False is always safe: a method that writes weights anyway is caught.
    updates_weights: ClassVar[bool] = False
    # Where the method's authors keep the model while calibrating on an accelerator: "resident" (the whole
    # model on the device: Wanda's main.py and the codebases built on it, device_map="auto", which spills
    # to the host only when the model does not fit) or "offload" (SparseGPT's llama.py: weights on the host,
    # one block at a time on the device). The profile's ``offload`` may override it.
    authors_placement: ClassVar[str] = "resident"
    # False: the method spreads sparsity unevenly across layers (e.g. global
    # magnitude); the core then checks the total, not each layer.
    uniform_layer_sparsity: ClassVar[bool] = True
    # True: before pruning, the core runs the calibration windows through the *dense* model and
    # hands :meth:`plan_layer_targets` every layer's input statistics (``||X_j||^2``); the method
    # returns a target per layer (OWL's outlier-weighted sparsities). The core then prunes each
    # layer to its own target and checks each layer and the model's total.
    plans_layer_targets: ClassVar[bool] = False

    def plan_layer_targets(self, blocks: list[dict[str, nn.Module]], dense_inputs: dict, target: Target) -> dict[str, Target]:
        """``{layer_name: Target}`` for every layer; ``blocks`` lists the prunable linears of each
        transformer block in order, ``dense_inputs[name]`` their inputs' statistics on the dense model."""
        raise NotImplementedError(f"{type(self).__name__} sets plans_layer_targets but has no plan_layer_targets")

    # True: a structured (width) method. The core hands :meth:`plan_structure` the dense model's input
    # statistics (with means and variances); the method returns a StructuredPlan (rows and columns to keep,
    # compensation biases); the core applies it as masks, checks and records it, then shrinks the model.
    structured: ClassVar[bool] = False

    def plan_structure(self, model: nn.Module, blocks: list[dict[str, nn.Module]], dense_inputs: dict,
                       target: Target):
        raise NotImplementedError(f"{type(self).__name__} sets structured but has no plan_structure")

    @property
    def eora_rank(self) -> int:
        return getattr(self.params, "eora_rank", 0)

    @property
    def calibrates(self) -> bool:
        """Whether the job runs the block-by-block calibration pipeline (the method's statistics, or EoRA's)."""
        return self.needs_calibration or self.eora_rank > 0

    def record(self) -> dict:
        """What the method decided that the result should keep (``method_record``), e.g. OWL's outlier ratios."""
        return {}

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement prune_layer or prune")

    def prune(self, layers: dict[str, nn.Module], target: Target, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Masks for all layers; the default prunes each layer on its own."""
        return {
            name: self.prune_layer(LayerToPrune(name, module.weight.data, generator), target)
            for name, module in layers.items()
        }


BASE = PruningMethod


def offloads(ctx, model: nn.Module) -> bool:
    """Whether a calibrated pruning job on an accelerator keeps the weights on the host and moves one decoder
    block at a time to the device (peak device memory: one block plus the activations): as the method's
    authors place the model, unless the profile's ``offload`` says otherwise
    (:func:`sparsebench.placement.decide_offload`). Records why in ``ctx.extra["offload_reason"]``."""
    if ctx.device.type == "cpu" or not ctx.method.calibrates or not hasattr(ctx.task, "decoder_blocks"):
        return False
    weight_bytes = sum(p.numel() for p in model.parameters()) * ctx.dtype.itemsize
    free = torch.cuda.mem_get_info(ctx.device)[0] if ctx.device.type == "cuda" else None
    offload, why = decide_offload(ctx.profile.offload, ctx.method.authors_placement, weight_bytes, free)
    ctx.extra["offload_reason"] = why
    return offload


def run(ctx) -> dict:
    model = ctx.load_model(offload=lambda m: offloads(ctx, m))
    offload = ctx.placed["offloaded"]
    layers = ctx.task.prunable_layers(model)
    pruned = prune_model(ctx, model, layers, offload=offload)
    with torch.no_grad():
        blocks = ctx.task.decoder_blocks(model) if offload else None
        with streamed(model, blocks, ctx.device) if offload else contextlib.nullcontext():
            metrics, samples = ctx.timed("eval", ctx.task.evaluate_with_samples, model)
            zeroshot = ctx.timed("zeroshot", ctx.task.zeroshot, model) if hasattr(ctx.task, "zeroshot") else {}
    return merge_zeroshot({"metrics": metrics, **({"samples": samples} if samples else {}), **pruned}, zeroshot)
