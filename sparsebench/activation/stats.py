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
        # counts stay on the activations' device (0-dim / 1-dim int64 tensors) until read: no host read per call
        self.nonzero = {n: 0 for n in self.names}
        self.positive = {n: 0 for n in self.names}
        self.above = {n: 0 for n in self.names}  # (len(magnitudes),) entries above each magnitude
        # per input row (evaluation window), in call order: entries, non-zero, positive
        self.rows = {n: [] for n in self.names}
        self._handles: list = []
        self._bounds: dict = {}

    def _count(self, name: str, out: torch.Tensor) -> None:
        a = out.detach()
        flat = a.reshape(a.shape[0], -1) if a.dim() > 1 else a.reshape(1, -1)
        nonzero_rows, positive_rows = torch.count_nonzero(flat, dim=1), (flat > 0).sum(dim=1)
        self.rows[name].append((flat.shape[1], nonzero_rows, positive_rows))
        self.total[name] += a.numel()
        self.nonzero[name] = self.nonzero[name] + nonzero_rows.sum()
        self.positive[name] = self.positive[name] + positive_rows.sum()
        if self.magnitudes:
            # bucket b holds magnitudes in (m[b-1], m[b]]: entries above m[i] are those in buckets > i
            # magnitudes rounded to the activations' dtype, as ``mag > m`` compares them
            bounds = self._bounds.get((a.dtype, a.device))
            if bounds is None:  # copied to the device once, not per call
                bounds = torch.tensor(self.magnitudes, dtype=a.dtype).to(a.device, torch.float32)
                self._bounds[(a.dtype, a.device)] = bounds
            bucket = torch.bucketize(a.abs().float().flatten(), bounds)
            per_bucket = torch.bincount(bucket, minlength=len(self.magnitudes) + 1)
            above = per_bucket.flip(0).cumsum(0).flip(0)[1:]
            self.above[name] = self.above[name] + above

    def _rows_on_host(self, name: str) -> list[tuple[int, int, int]]:
        """The per-row counts of ``name`` as (entries, non-zero, positive), read from the device once."""
        rows = self.rows[name]
        if rows and isinstance(rows[0][1], torch.Tensor):
            nonzero = torch.cat([r[1] for r in rows]).tolist()
            positive = torch.cat([r[2] for r in rows]).tolist()
            width = [w for w, nz, _ in rows for _ in range(nz.numel())]
            self.rows[name] = rows = list(zip(width, nonzero, positive))
        return rows

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
            above = self.above[n].tolist() if isinstance(self.above[n], torch.Tensor) else [0] * len(self.magnitudes)
            out[n] = {"entries": self.total[n], "nonzero": int(self.nonzero[n]) / t,
                      "positive": int(self.positive[n]) / t,
                      "above": {f"{m:g}": c / t for m, c in zip(self.magnitudes, above)}}
        return out

    def row_fractions(self, kind: str) -> list[float]:
        """Per input row (window): the fraction of ``kind`` ("nonzero" or "positive") entries, averaged over
        the watched modules; with equal rows their mean is the mean over modules of :meth:`fractions`."""
        col = {"nonzero": 1, "positive": 2}[kind]
        for n in self.names:
            self._rows_on_host(n)
        n_rows = min((len(r) for r in self.rows.values()), default=0)
        return [sum(self.rows[n][i][col] / max(self.rows[n][i][0], 1) for n in self.names) / len(self.names)
                for i in range(n_rows)]
