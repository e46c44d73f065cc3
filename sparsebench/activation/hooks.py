"""Applying thresholds during a forward pass, and measuring the zeros they leave.

``x -> x * 1[|x| > t]`` with ``t`` a scalar (one threshold per tensor) or a
vector over the last dimension (one threshold per channel). A threshold keyed
by an ``nn.Linear`` sparsifies that layer's input (a forward pre-hook, so the
other layers reading the same tensor still see it whole); keyed by any other
module it sparsifies that module's output. Every linear input and every gate
activation of the blocks is counted, whether or not it is thresholded, so the
measured sparsity includes zeros the model produces by itself.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsebench.activation.sites import Block


def sparsify(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Zero the entries with magnitude at or below ``threshold`` (broadcast over the last dim)."""
    return x.masked_fill(x.abs() <= threshold.to(x.dtype), 0)


class _Counter:
    __slots__ = ("zeros", "total")

    def __init__(self):
        self.zeros, self.total = 0, 0

    def add(self, x: torch.Tensor) -> None:
        self.zeros += int((x == 0).sum())
        self.total += x.numel()

    @property
    def fraction(self) -> float:
        return self.zeros / self.total if self.total else float("nan")


class ActivationSparsifier:
    """Context manager: thresholds on, zero counters on; ``fractions()`` afterwards."""

    def __init__(self, model: nn.Module, blocks: list[Block], thresholds: dict[str, torch.Tensor]):
        self.model, self.blocks = model, blocks
        self.thresholds = thresholds
        self.counters: dict[str, _Counter] = {}
        self._handles: list = []
        counted = {name for b in blocks for name in (*b.linears.values(), b.gate_act)}
        unknown = sorted(set(thresholds) - counted)
        if unknown:
            raise KeyError(f"thresholds for modules that are no block linear or gate activation: {unknown[:4]}")

    def __enter__(self) -> "ActivationSparsifier":
        modules = dict(self.model.named_modules())
        device = next(self.model.parameters()).device
        for block in self.blocks:
            for name in block.linears.values():
                self._hook(modules[name], name, device, on_input=True)
            self._hook(modules[block.gate_act], block.gate_act, device, on_input=False)
        return self

    def _hook(self, module: nn.Module, name: str, device, on_input: bool) -> None:
        counter = self.counters.setdefault(name, _Counter())
        t = self.thresholds.get(name)
        t = None if t is None else t.to(device)
        if on_input:
            def pre(mod, args):
                x = args[0] if t is None else sparsify(args[0], t)
                counter.add(x)
                return (x, *args[1:])
            self._handles.append(module.register_forward_pre_hook(pre))
        else:
            def post(mod, args, out):
                y = out if t is None else sparsify(out, t)
                counter.add(y)
                return y
            self._handles.append(module.register_forward_hook(post))

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def fractions(self) -> dict[str, float]:
        """Fraction of exact zeros seen at each counted tensor (linear inputs, gate activations)."""
        return {name: c.fraction for name, c in self.counters.items()}
