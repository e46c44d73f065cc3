"""streaming-llm: attention sinks (the first tokens) plus a window of the most recent keys.

Efficient Streaming Language Models with Attention Sinks (Xiao et al. 2023,
arXiv:2309.17453): keep the KV of the first ``sinks`` tokens ("attention
sinks", 4 in the paper) and of a rolling window of recent tokens; row i keeps
keys j with j < sinks or i - w < j <= i. The window ``w`` is the fixed width
that, with the sinks, meets the density budget (or ``window`` when given).
"""

from dataclasses import dataclass

from sparsebench.attention.select import solve_window, window_pattern
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


class StreamingLLM(SparseAttentionMethod):
    name = "streaming-llm"
    display_name = "StreamingLLM"
    paper = Paper("Efficient Streaming Language Models with Attention Sinks", "Xiao, Tian, Chen, Han, Lewis", 2023,
                  arxiv="2309.17453")

    @dataclass
    class Params:
        sinks: int = 4  # the paper's 4 initial tokens
        window: int | None = None  # None: the width that, with the sinks, meets the budget

    def width(self, budget) -> int:
        if self.params.window:
            return self.params.window
        # rows past sinks + w keys keep exactly sinks + w: solve for that cap, the sinks take their share of it
        return max(1, solve_window(budget) - self.params.sinks)

    def decide(self, q, k, budget, q_prev):
        return window_pattern(budget, self.width(budget), q.shape[0], q.shape[1], sinks=self.params.sinks,
                              device=q.device)
