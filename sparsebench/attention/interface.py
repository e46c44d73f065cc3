"""Plugging a sparse-attention method into transformers without copying the model's code.

transformers dispatches every attention layer through its attention-function
registry (``AttentionInterface``). We register one function under the name
``"sparsebench"`` and switch a model to it with ``set_attn_implementation``.
That function asks the active :class:`SparseAttention` session what to do:
outside a sparse phase it computes exact causal attention (SDPA); inside one,
it hands the layer's queries and keys to the method, runs the decision the
method returns on the session's executor (``reference``: masked dense
attention; ``flex``: FlexAttention on a BlockMask built from the decision's
blocks, timed against SDPA during prefill when a latency recorder is given),
and adds the mask's statistics to that layer's totals for the phase.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import torch

from sparsebench.attention.budget import Budget
from sparsebench.attention.executor import MaskStats, dense_attention, mask_stats, masked_attention
from sparsebench.attention.pattern import Tiling

IMPLEMENTATION = "sparsebench"
MAX_TIMED_CALLS = 2048  # sparse calls whose parts are timed (events per call: 4); generation makes many more
_ACTIVE: list["SparseAttention"] = []  # the session the registered function consults (innermost last)


def _expand_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """Repeat grouped K/V heads so every query head has its own (GQA)."""
    return x if x.shape[1] == heads else x.repeat_interleave(heads // x.shape[1], dim=1)


def attention_forward(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """The function registered in ``AttentionInterface``; returns (B, rows, H, D) and no weights."""
    if attention_mask is not None:
        raise ValueError("sparsebench attention takes unpadded equal-length sequences (attention_mask must be None)")
    heads = query.shape[1]
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    q0 = key.shape[2] - query.shape[2]  # rows are the last positions of the keys (a KV cache precedes them)
    session = _ACTIVE[-1] if _ACTIVE else None
    if session is None or session.phase is None:
        out = dense_attention(query, _expand_kv(key, heads), _expand_kv(value, heads), scaling, q0)
        if session is not None:
            session.remember_queries(module.layer_idx, query)
    else:
        out = session.sparse_call(module.layer_idx, query, key, value, scaling, q0)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, attention_forward)
    return IMPLEMENTATION


class SparseAttention:
    """One method at one density on one model: phases, per-layer statistics.

    Use ``with session.phase("prefill"):`` around the forward calls whose
    query rows are sparse; calls outside a phase are dense. ``stats[phase][layer]``
    accumulates :class:`MaskStats`.
    """

    def __init__(self, method, density: float, query_block: int = 64, keep_queries: int = 64,
                 executor: str = "reference", latency=None, kernel: str = "flex"):
        if executor not in ("reference", "flex"):
            raise ValueError(f"executor={executor!r}; allowed: reference, flex")
        if kernel not in ("flex", "triton"):
            raise ValueError(f"kernel={kernel!r}; allowed: flex, triton")
        self.kernel = kernel  # the flex executor's block-sparse kernel: FlexAttention or our Triton kernel
        self.method = method
        # a method without a block-sparse kernel (Mustafar) stays on the reference path
        self.executor = "reference" if method.no_block_kernel else executor
        self.latency = latency  # a sparsebench.attention.flex.PrefillLatency, or None
        self.density = density
        self.query_block = query_block
        self.keep_queries = keep_queries
        self.phase: str | None = None
        self.stats: dict[str, dict[int, MaskStats]] = defaultdict(lambda: defaultdict(MaskStats))
        self.kernels_ran: dict[str, set] = defaultdict(set)  # phase -> the block-sparse kernels that ran in it
        self._recent_q: dict[int, torch.Tensor] = {}
        self._parts: list = []  # (phase, [event per part boundary]) of the first MAX_TIMED_CALLS CUDA calls

    def _mark(self, query) -> list | None:
        """CUDA events bracketing the parts of one sparse call (selection, kernel, bookkeeping): where a
        job's time goes, read at the phase's end without synchronising inside the call."""
        if not query.is_cuda or len(self._parts) >= MAX_TIMED_CALLS:
            return None
        marks = []
        self._parts.append((self.phase, marks))
        return marks

    @staticmethod
    def _tick(marks) -> None:
        if marks is not None:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            marks.append(ev)

    def parts_ms(self) -> dict:
        """GPU-timeline ms per phase and part (select, kernel, bookkeeping) over the timed calls, and how many
        calls were timed. A part's time includes the GPU waiting for its launches (Python, compilation)."""
        if not self._parts:
            return {}
        torch.cuda.synchronize()
        out: dict = {}
        for phase, marks in self._parts:
            d = out.setdefault(phase, {"select": 0.0, "kernel": 0.0, "bookkeeping": 0.0, "calls": 0})
            d["calls"] += 1
            for name, a, b in zip(("select", "kernel", "bookkeeping"), marks, marks[1:]):
                d[name] += a.elapsed_time(b)
        return out

    def install(self, model) -> "SparseAttention":
        model.set_attn_implementation(register())
        return self

    @contextlib.contextmanager
    def active(self):
        _ACTIVE.append(self)
        try:
            yield self
        finally:
            _ACTIVE.remove(self)

    @contextlib.contextmanager
    def sparse(self, phase: str):
        previous, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = previous

    def remember_queries(self, layer: int, query: torch.Tensor) -> None:
        """Keep the last queries of a dense call (a decode-phase method may estimate its pattern from them)."""
        self._recent_q[layer] = query[:, :, -self.keep_queries :].detach()

    def recent_queries(self) -> dict[int, torch.Tensor]:
        """Each layer's remembered queries (what :meth:`remember_queries` kept last)."""
        return dict(self._recent_q)

    def restore_queries(self, queries: dict[int, torch.Tensor]) -> None:
        """Set the remembered queries as a dense call would have (a cached dense prompt)."""
        self._recent_q = {int(layer): q for layer, q in queries.items()}

    def sparse_call(self, layer: int, query, key, value, scaling: float, q0: int) -> torch.Tensor:
        heads = query.shape[1]
        if not self.method.sparse_layer(layer):  # a layer the method leaves dense: every causal pair, exact
            out = dense_attention(query, _expand_kv(key, heads), _expand_kv(value, heads), scaling, q0)
            pairs = (query.shape[2] * q0 + query.shape[2] * (query.shape[2] + 1) // 2) * query.shape[0] * heads
            rows = query.shape[0] * heads * query.shape[2]
            tiles = Tiling(Budget(1.0, self.phase, q0, query.shape[2], self.query_block, key.shape[1]),
                           64, 64).causal_tile_count() * query.shape[0] * heads  # a kernel visits all
            self.stats[self.phase][layer].add(MaskStats(kept_pairs=pairs, causal_pairs=pairs, recall_sum=rows,
                                                        recall_rows=rows, rows_total=rows, tiles_kept=tiles, tiles_causal=tiles,
                                                        dense_layer=True))
            self.remember_queries(layer, query)
            return out
        marks = self._mark(query)
        self._tick(marks)
        budget = Budget(self.density, self.phase, q0, query.shape[2], self.query_block, key.shape[1])
        key, value, kv_stats = self.method.compress_kv(key, value, budget)
        key_h = _expand_kv(key, heads)
        pattern = self.method.decide(query, key_h, budget, self._recent_q.get(layer))
        self._tick(marks)
        if self.executor == "flex":
            from sparsebench.attention.flex import (flex_attention_forward, triton_attention_forward,
                                                    triton_decode_forward)

            mask = run = None
            if self.kernel == "triton" and self.phase == "decode":  # one key selection per row
                out = triton_decode_forward(query, key, value, pattern, scaling)
                ran = "triton_block_decode"
            elif self.kernel == "triton":
                out, run = triton_attention_forward(query, key, value, pattern, scaling)
                ran = "triton_block_attention"
            else:
                out, mask = flex_attention_forward(query, key, value, pattern, scaling)
                ran = "flex_attention"
            self.kernels_ran[self.phase].add(ran)
            self._tick(marks)
            stats = mask_stats(query, key_h, pattern, scaling, q0)  # kept pairs from the blocks, sampled recall rows
        else:
            out, stats = masked_attention(query, key_h, _expand_kv(value, heads), pattern.token_mask, scaling, q0)
            self._tick(marks)  # the reference executor's kernel and statistics are one pass over row chunks
        tiling = pattern.tiling()
        stats.tiles_kept = pattern.tiles(tiling)[0].sum()  # stays on the device until the summary
        stats.tiles_causal = tiling.causal_tile_count() * query.shape[0] * heads
        stats.kv_kept, stats.kv_total = kv_stats
        self._tick(marks)
        if self.executor == "flex" and self.latency is not None and self.phase == "prefill" and q0 == 0:
            self.latency.measure(layer, query, key, value, mask, scaling, run=run)  # timed apart (measure_s)
        self.stats[self.phase][layer].add(stats)
        self.remember_queries(layer, query)
        return out

    def summary(self, phase: str) -> dict:
        """Totals over layers plus per-layer density and recall for ``phase``; ``sparse_layers_density``:
        the density over the layers the method sparsifies (what its budget binds)."""
        total, sparse = MaskStats(), MaskStats()
        layers = {}
        for layer, s in sorted(self.stats[phase].items()):
            total.add(s)
            if not s.dense_layer:
                sparse.add(s)
            layers[str(layer)] = {"density": s.density, "recall": s.recall, "tile_density": s.tile_density}
            if s.dense_layer:
                layers[str(layer)]["dense"] = True
        return {**total.to_dict(), "sparse_layers_density": sparse.density, "layers": layers}
