"""quest: query-aware selection of KV pages by an upper bound of their attention scores, in decode.

Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference (Tang et
al. 2024, arXiv:2406.10774): keep per KV page (``page`` consecutive tokens) the
elementwise minimum m and maximum M of its keys; for a decode query q the
page's score is the upper bound sum_d max(q_d * M_d, q_d * m_d) of any q.k in
it; attend to the top-k pages. As in the authors' evaluation code
(mit-han-lab/Quest, ``evaluation/quest_attention.py``): only decode is sparse
(a call with more than one query row runs dense attention, so the prompt is
dense) and the first two layers stay dense (``layer_id < 2``). The job
therefore measures the decode phase only, and its density counts every layer
(the two dense ones included); the budget binds the sparse layers. Budget:
Quest fixes a token budget per query; here each decode row keeps the pages
its density share pays for (the same per-row allowance as every method), the
page holding the row always among them. ``quest-prefill`` is our extension to
prefill and every layer.
"""

from dataclasses import dataclass

import torch

from sparsebench.attention.select import block_min_max, group_max, select_blocks
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


def page_upper_bound(q, kmin, kmax):
    """(B, H, rows, pages): sum_d max(q_d * kmax_d, q_d * kmin_d), as two matmuls; on CUDA as one matmul of
    [q+, q-] with [kmax, kmin], whose accumulator adds the two halves before one rounding: the same bound,
    with half the (rows x pages) output written and no sum of two of them (at 32k tokens, ~1.2 GB each a
    layer). The CPU keeps the two matmuls (its default jobs' exact floats)."""
    if q.is_cuda:
        return torch.cat([q.clamp(min=0), q.clamp(max=0)], dim=-1) @ torch.cat([kmax, kmin], dim=-1).transpose(-1, -2)
    return q.clamp(min=0) @ kmax.transpose(-1, -2) + q.clamp(max=0) @ kmin.transpose(-1, -2)


def page_scores(q, k, budget, page: int):
    """(B, H, groups, pages): each row group's largest page bound (its rows' queries against every page of
    ``page`` keys). On CUDA, for groups of >= 16 rows (prefill's query blocks), one fused kernel
    (``sparsebench.attention.fused``: the (rows x pages) bound never written; pages after a group's last row
    -inf, never its candidates); elsewhere the bound then the group maximum (the CPU's exact floats)."""
    kmin, kmax = block_min_max(k, page)
    if q.is_cuda and budget.row_block >= 16:
        from sparsebench.attention.fused import fits, page_bound_group_max

        if fits(q):
            return page_bound_group_max(q, kmin, kmax, budget.row_block, budget.q0, page)
    return group_max(page_upper_bound(q, kmin, kmax), budget.row_block)


class Quest(SparseAttentionMethod):
    name = "quest"
    display_name = "Quest"
    paper = Paper("Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
                  "Tang, Zhao, Zhu, Xiao, Kasikci, Han", 2024, arxiv="2406.10774")
    patterns = ("unstructured", "block")
    phases = ("decode",)

    @dataclass
    class Params:
        block: int = 16  # page size: Quest's 16 tokens
        dense_layers: int = 2  # the first layers left dense (Quest's evaluation: layers 0 and 1)

        def check(self):
            if self.block < 1:
                raise ValueError(f"block={self.block} must be >= 1")
            if self.dense_layers < 0:
                raise ValueError(f"dense_layers={self.dense_layers} must be >= 0")

    def sparse_layer(self, layer: int) -> bool:
        return layer >= self.params.dense_layers

    def decide(self, q, k, budget, q_prev):
        return select_blocks(page_scores(q, k, budget, self.params.block), budget, self.params.block)
