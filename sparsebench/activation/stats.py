"""How sparse activations are by themselves: counts of zero, positive and small entries of module outputs.

Used by the Lazy Neuron analysis (``methods/activation_sparsity/mlp_activation_stats.py``): forward
hooks on the MLP activation functions count, over every evaluated token, the entries that are
non-zero, positive, and above each magnitude in ``magnitudes``. Every token has the same number
of entries, so these global fractions equal the per-token fractions averaged over tokens (the
paper's "percentage of nonzero entries ... for each input").
"""

from __future__ import annotations

import torch
from torch import nn


class OutputCounter:
    """Context manager: forward hooks on the modules ``names`` of ``model``; ``fractions()`` afterwards."""

    def __init__(self, model: nn.Module, names: list[str], magnitudes: list[float]):
        self.model, self.names, self.magnitudes = model, list(names), sorted(magnitudes)
        self.total = {n: 0 for n in self.names}
        self.nonzero = {n: 0 for n in self.names}
        self.positive = {n: 0 for n in self.names}
        self.above = {n: [0] * len(self.magnitudes) for n in self.names}
        # per input row (evaluation window), in call order: entries, non-zero, positive
        self.rows = {n: [] for n in self.names}
        self._handles: list = []

    def _count(self, name: str, out: torch.Tensor) -> None:
        a = out.detach()
        flat = a.reshape(a.shape[0], -1) if a.dim() > 1 else a.reshape(1, -1)
        self.rows[name].extend(zip([flat.shape[1]] * flat.shape[0], torch.count_nonzero(flat, dim=1).tolist(),
                                   (flat > 0).sum(dim=1).tolist()))
        self.total[name] += a.numel()
        self.nonzero[name] += int(torch.count_nonzero(a))
        self.positive[name] += int((a > 0).sum())
        mag = a.abs()
        for i, m in enumerate(self.magnitudes):
            self.above[name][i] += int((mag > m).sum())

    def __enter__(self) -> "OutputCounter":
        modules = dict(self.model.named_modules())
        missing = [n for n in self.names if n not in modules]
        if missing:
            raise KeyError(f"no such modules to watch: {missing[:4]}")
        for n in self.names:
            self._handles.append(modules[n].register_forward_hook(lambda m, a, out, n=n: self._count(n, out)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def fractions(self) -> dict[str, dict]:
        """Per module: the fraction of entries that are non-zero, positive, and of magnitude above each of
        ``magnitudes`` (keyed by the magnitude written with ``:g``), over all tokens seen."""
        out = {}
        for n in self.names:
            t = max(self.total[n], 1)
            out[n] = {"entries": self.total[n], "nonzero": self.nonzero[n] / t, "positive": self.positive[n] / t,
                      "above": {f"{m:g}": c / t for m, c in zip(self.magnitudes, self.above[n])}}
        return out

    def row_fractions(self, kind: str) -> list[float]:
        """Per input row (window): the fraction of ``kind`` ("nonzero" or "positive") entries, averaged over
        the watched modules; with equal rows their mean is the mean over modules of :meth:`fractions`."""
        col = {"nonzero": 1, "positive": 2}[kind]
        n_rows = min((len(r) for r in self.rows.values()), default=0)
        return [sum(self.rows[n][i][col] / max(self.rows[n][i][0], 1) for n in self.names) / len(self.names)
                for i in range(n_rows)]
