"""quest: query-aware selection of KV pages by an upper bound of their attention scores.

Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference (Tang et
al. 2024, arXiv:2406.10774): keep per KV page (``page`` consecutive tokens) the
elementwise minimum m and maximum M of its keys; for query q the page's score
is the upper bound sum_d max(q_d * M_d, q_d * m_d) of any q.k in it; attend to
the top-k pages. Quest is a decode method (one query); in prefill a query block
uses the largest bound over its rows. The current page is always kept.
"""

from dataclasses import dataclass

from sparsebench.attention.select import block_stats, group_max, select_blocks
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


def page_upper_bound(q, kmin, kmax):
    """(B, H, rows, pages): sum_d max(q_d * kmax_d, q_d * kmin_d), as two matmuls."""
    return q.clamp(min=0) @ kmax.transpose(-1, -2) + q.clamp(max=0) @ kmin.transpose(-1, -2)


class Quest(SparseAttentionMethod):
    name = "quest"
    paper = Paper("Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
                  "Tang, Zhao, Zhu, Xiao, Kasikci, Han", 2024, arxiv="2406.10774")
    patterns = ("unstructured", "block")

    @dataclass
    class Params:
        block: int = 16  # page size: Quest's 16 tokens

    def decide(self, q, k, budget, q_prev):
        kmin, kmax, _ = block_stats(k, self.params.block)
        bound = group_max(page_upper_bound(q, kmin, kmax), budget.row_block)
        return select_blocks(bound, budget, self.params.block)
