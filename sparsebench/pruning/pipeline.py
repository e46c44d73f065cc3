"""Sequential layer-by-layer calibration for one-shot LLM pruning.

This is the pipeline of the reference implementations (SparseGPT, Wanda,
DSnoT): the calibration windows are embedded once, then the decoder blocks are
processed in order. For block ``i``:

1. run the block on its calibration inputs with a hook on every ``nn.Linear``
   that accumulates the layer's input statistics (:class:`LayerInputs`) -- one
   forward of the block, shared by all its linears;
2. ask the method for a keep-mask per linear (SparseGPT also rewrites the
   weight in place) and apply the masks;
3. run the *pruned* block again on the same inputs; its outputs are the inputs
   of block ``i + 1``.

So block ``i`` is calibrated on what the already pruned blocks ``< i`` produce,
and the calibration activations are computed once per job, not once per layer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from sparsebench.lm.blocks import block_kwargs, capture_block_inputs, run_block
from sparsebench.masks import apply_mask, check_plan, get_mask
from sparsebench.placement import module_device, one_thread, streamed, visit_device
from sparsebench.progress import progress
from sparsebench.pruning.calibration import (activations_home, calibration_record, collect_layer_inputs,
                                             dense_layer_inputs)
from sparsebench.pruning.eora import attach, effective_weight, eigenspace, eora_factors
from sparsebench.pruning.layer import LayerToPrune
from sparsebench.pruning.phases import Phases


@dataclass
class _Calibration:
    """The calibration windows captured at block 0, where they live, and each block's linears."""

    blocks: nn.ModuleList
    linears_of: object
    inputs: list
    kwargs: list  # per block, its keyword arguments per batch (block_kwargs)
    device: torch.device
    on: torch.device | None  # where to compute when the activations live elsewhere (offloaded to the host)
    phases: Phases


def _calibration_inputs(ctx, model: nn.Module, layers: dict[str, nn.Module], offload: bool) -> _Calibration:
    blocks = ctx.task.decoder_blocks(model)
    module_names = {mod: name for name, mod in model.named_modules()}
    device = module_device(model)
    phases = Phases(ctx, device)
    with phases("calibration", "capture"):
        with ctx.timer("calibration_tokens"):  # reading and tokenizing the text (the references get token ids)
            ids = ctx.task.calibration_windows(ctx.seed)
        ctx.extra["calibration"] = calibration_record(ids, ctx.seed)
        cached = getattr(ctx.task, "calibration_pool_cache", None)
        if cached is not None:  # the tokenized pool read from the on-disk cache ("hit") or made ("miss")
            ctx.extra["calibration"]["token_pool_cache"] = cached
        home = activations_home(model, ids, device)
        ctx.extra["calibration"]["activations_on"] = str(home)
        ctx.log(f"calibration: {ids.shape[0]} x {ids.shape[1]} tokens, seed {ctx.seed}, activations on {home}")
        with streamed(model, blocks, device, with_blocks=False) if offload else contextlib.nullcontext():
            batch_size = getattr(ctx.task.params, "batch_size", 4)
            inputs, kwargs = capture_block_inputs(model, blocks[0], ids, batch_size, keep_on=home)
            kwargs = block_kwargs(model, blocks, ids, batch_size, kwargs)

    def linears_of(block):
        prefix = module_names[block]
        return {n: m for n, m in layers.items() if n.startswith(prefix + ".")}

    return _Calibration(blocks, linears_of, inputs, kwargs, device, device if home != device else None, phases)


@torch.no_grad()
def dense_statistics(ctx, model: nn.Module, layers: dict[str, nn.Module], with_moments: bool = True,
                     offload: bool = False):
    """``([linears of each block], {layer: LayerInputs})`` on the dense model (structured methods)."""
    cal = _calibration_inputs(ctx, model, layers, offload)
    inputs, cal.inputs = cal.inputs, None
    with cal.phases("calibration", "statistics"):
        stats = dense_layer_inputs(cal.blocks, cal.linears_of, inputs, cal.kwargs, with_moments, offload,
                                   cal.device, cal.on, consume=True)
    cal.phases.record()
    return [cal.linears_of(b) for b in cal.blocks], stats


@torch.no_grad()
def prune_sequentially(ctx, model: nn.Module, layers: dict[str, nn.Module], offload: bool = False,
                       compensation: dict | None = None):
    """Prune ``layers`` block by block on calibration data.

    Returns ``({layer_name: keep_mask}, layer_targets)``: ``layer_targets`` is
    ``{layer_name: Target}`` when the method planned a target per layer, else None.

    ``offload``: the decoder blocks live on the host and each one moves to the device where the rest of
    the model is (``sparsebench.placement``) for its calibration and pruning, then back. Masks and pruned
    weights are the same as with the whole model in memory.

    With the method's ``eora_rank`` > 0, each pruned layer gets EoRA's low-rank compensation
    (``sparsebench.pruning.eora``), fitted on the same calibration inputs the method saw, before the block's
    outputs feed the next block; ``compensation`` (a dict) receives each layer's rank, added parameters and
    activation-weighted errors.
    """
    method, target = ctx.method, ctx.target
    rank = getattr(method, "eora_rank", 0)
    with_gram = getattr(method, "needs_gram", True) or rank > 0
    with_moments = getattr(method, "needs_input_moments", False)
    cal = _calibration_inputs(ctx, model, layers, offload)
    blocks, linears_of, kwargs, device, on = cal.blocks, cal.linears_of, cal.kwargs, cal.device, cal.on
    phases = cal.phases
    inputs, cal.inputs = cal.inputs, None  # owned here: each set of activations dies once it is replaced

    layer_targets = None
    if getattr(method, "plans_layer_targets", False):
        with phases("calibration", "dense"):
            dense = dense_layer_inputs(blocks, linears_of, inputs, kwargs, False, offload, device, on)
        layer_targets = method.plan_layer_targets([linears_of(b) for b in blocks], dense, target)
        missing = sorted(set(layers) - set(layer_targets))
        if missing:
            raise ValueError(f"{method.name}: plan_layer_targets gave no target for {missing[:3]}")
        check_plan(layers, layer_targets, target)
        del dense

    check = not getattr(method, "updates_weights", False)  # SparseGPT rewrites every weight: nothing to check
    masks: dict[str, torch.Tensor] = {}
    for i, block in enumerate(progress(blocks, desc=f"{getattr(method, 'name', '')} pruning".strip(), unit="block")):
        linears = linears_of(block)
        if offload:
            with phases("offload"):
                visit = visit_device(block, device, check)
        with phases("calibration", "statistics"):
            stats = collect_layer_inputs(block, linears, inputs, kwargs[i], with_gram, with_moments, on)
        with phases("prune_layers"), one_thread(device):
            _prune_block(ctx, linears, stats, layer_targets, masks, compensation)
        del stats  # the block's Gram matrices (0.65 GiB at 7B) are gone before its re-run
        with phases("calibration", "rerun"):
            inputs = run_block(block, inputs, kwargs[i], on, consume=True)
        kept = int(sum(masks[n].sum() for n in linears))  # one sync, where the masks are
        if offload:
            with phases("offload"):
                visit.back()
                masks.update({n: get_mask(m) for n, m in linears.items()})  # the host copies, not device ones
        total = sum(masks[n].numel() for n in linears)
        ctx.log(f"block {i + 1}/{len(blocks)} pruned: {len(linears)} linears, sparsity {1 - kept / max(total, 1):.4f}")
    phases.record()
    return masks, layer_targets


def _prune_block(ctx, linears: dict[str, nn.Module], stats: dict, layer_targets: dict | None, masks: dict,
                 compensation: dict | None) -> None:
    """Prune (and with ``eora_rank``, compensate) one block's linears into ``masks``; nothing it makes outlives it
    but the masks, the rewritten weights and EoRA's factors."""
    method, target = ctx.method, ctx.target
    rank = getattr(method, "eora_rank", 0)
    eigen: dict[int, tuple] = {}  # q/k/v (gate/up) share one statistics object: one eigenspace for them
    for name, mod in linears.items():
        dense_weight = mod.weight.data.clone() if rank else None
        layer = LayerToPrune(name, mod.weight.data, ctx.generator, stats[name])
        masks[name] = method.prune_layer(layer, layer_targets[name] if layer_targets else target)
        apply_mask(mod, masks[name])
        if rank:
            gram = stats[name].gram
            space = eigen.setdefault(id(gram), eigenspace(gram))
            low_rank = eora_factors(dense_weight.float() - effective_weight(mod).float(), gram, rank, space)
            attach(mod, low_rank)
            if compensation is not None:
                compensation[name] = low_rank.summary()
            del dense_weight
