"""Transformer-block calibration plumbing shared by every family that calibrates block by block.

Pruning (``sparsebench.pruning.pipeline``) and activation sparsity
(``sparsebench.activation.greedy``) both embed calibration windows once, stop at
the first decoder block (:func:`capture_block_inputs`), then run the blocks in
order on those hidden states (:func:`run_block`). This is the loop of the
reference pipelines (SparseGPT's and Wanda's ``llama.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebench.placement import module_device


class _StopForward(Exception):
    """Raised by the capture hook on block 0: nothing after it needs to run."""


def _forward_until_stopped(model: nn.Module, ids: torch.Tensor, batch_size: int) -> None:
    """Run ``model`` on each batch of ``ids`` until a hook or stand-in raises :class:`_StopForward`."""
    device = module_device(model)
    for start in range(0, ids.shape[0], batch_size):
        try:
            model(ids[start : start + batch_size].to(device), use_cache=False)
        except _StopForward:
            pass


def capture_block_inputs(model: nn.Module, block: nn.Module, ids: torch.Tensor, batch_size: int,
                         keep_on: torch.device | None = None):
    """Hidden states entering ``block`` for each batch of ``ids`` (kept on ``keep_on``, default where the
    model computes them), and the keyword arguments (attention mask, position ids, rotary (cos, sin), ...)
    the model passes it."""
    inputs: list[torch.Tensor] = []
    kwargs: list[dict] = []

    def hook(_module, args, kw):
        hidden = args[0] if args else kw.pop("hidden_states")
        inputs.append(hidden.detach() if keep_on is None else hidden.detach().to(keep_on))
        kwargs.append({k: v for k, v in kw.items() if k not in ("past_key_values", "past_key_value", "use_cache")})
        raise _StopForward

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        _forward_until_stopped(model, ids, batch_size)
    finally:
        handle.remove()
    return inputs, kwargs



class _KwargsRecorder(nn.Module):
    """Stands in for a decoder block while the model's loop hands it its keyword arguments; passes the
    hidden states through untouched (nothing is computed) and stops the forward after the last block."""

    def __init__(self, block: nn.Module, record: list, last: bool):
        super().__init__()
        self.record, self.last = record, last
        if hasattr(block, "attention_type"):  # some loops read the block's own kind
            self.attention_type = block.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        self.record.append({k: v for k, v in kwargs.items() if k not in ("past_key_values", "past_key_value",
                                                                            "use_cache", "cache")})
        if self.last:
            raise _StopForward
        return hidden_states


def block_kwargs(model: nn.Module, blocks: nn.ModuleList, ids: torch.Tensor, batch_size: int, shared: list):
    """Each block's keyword arguments per batch: ``shared`` (block 0's) for every block, unless the model
    mixes layer kinds (``config.layer_types``: Gemma 3's sliding-window and global layers get different
    masks and rotary tables), where each block's own are recorded by a forward through stand-ins."""
    types = getattr(getattr(model, "config", None), "layer_types", None)
    if not types or len(set(types)) < 2:
        return [shared] * len(blocks)
    records = [[] for _ in blocks]
    originals = list(blocks)
    try:
        for i, block in enumerate(originals):
            blocks[i] = _KwargsRecorder(block, records[i], i == len(originals) - 1)
        _forward_until_stopped(model, ids, batch_size)
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
    return records

def run_block(block: nn.Module, inputs: list[torch.Tensor], kwargs: list[dict],
              device: torch.device | None = None, consume: bool = False) -> list[torch.Tensor]:
    """The block's outputs for each batch; with ``device``, inputs held elsewhere (offloaded to the host)
    are computed there one batch at a time and the outputs go back where the inputs were.

    ``consume``: the caller needs the inputs no more, so each batch's entry in ``inputs`` is dropped (set to
    None) once its output exists: one set of activations plus one batch is alive, not two sets (2 GiB of a
    7B model's 128 x 2048 calibration)."""
    outs = []
    for k, kw in zip(range(len(inputs)), kwargs):
        hidden = inputs[k]
        if consume:
            inputs[k] = None
        out = block(on_device(hidden, device), **kw)
        out = out[0] if isinstance(out, tuple) else out
        outs.append(out.to(hidden.device) if out.device != hidden.device else out)
    return outs


def on_device(x: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return x if device is None or x.device == device else x.to(device, non_blocking=True)
