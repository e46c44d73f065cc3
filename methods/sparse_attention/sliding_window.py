"""sliding-window: each query attends to the ``w`` most recent keys (itself included).

Longformer: The Long-Document Transformer (Beltagy, Peters, Cohan 2020,
arXiv:2004.05150), the local attention that Mistral and StreamingLLM's
"window attention" baseline use: row i keeps keys j with i - w < j <= i.
The width is the one fixed ``w`` whose kept pairs over the sparse rows meet the
density budget (or ``window`` when given).
"""

from dataclasses import dataclass

from sparsebench.attention.select import solve_window, window_pattern
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


class SlidingWindow(SparseAttentionMethod):
    name = "sliding-window"
    paper = Paper("Longformer: The Long-Document Transformer", "Beltagy, Peters, Cohan", 2020, arxiv="2004.05150")

    @dataclass
    class Params:
        window: int | None = None  # None: the width that meets the density budget

    def width(self, budget) -> int:
        return self.params.window or solve_window(budget)

    def decide(self, q, k, budget, q_prev):
        return window_pattern(budget, self.width(budget), q.shape[0], q.shape[1], device=q.device)
