"""quest-prefill: our extension of Quest to sparse prefill and to every layer (not the paper's setting).

Quest (Tang et al. 2024, arXiv:2406.10774) sparsifies decode only and leaves
layers 0-1 dense (see ``quest``). This variant applies the same page upper
bound everywhere: in every layer, in decode, and in prefill, where a query
block of ``query_block`` rows ranks the pages by the largest bound over its
rows and shares the selection. It is what this benchmark called "quest" before
the method followed the paper; its prefill numbers measure our extension.
"""

from dataclasses import dataclass

from sparsebench.attention.budget import PHASES
from sparsebench.attention.select import select_blocks
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper
from sparsebench.registry import sibling_module

page_scores = sibling_module(__file__, "quest").page_scores


class QuestPrefill(SparseAttentionMethod):
    name = "quest-prefill"
    display_name = "Quest (prefill)"
    paper = Paper("Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
                  "Tang, Zhao, Zhu, Xiao, Kasikci, Han", 2024, arxiv="2406.10774")
    patterns = ("unstructured", "block")
    phases = PHASES

    @dataclass
    class Params:
        block: int = 16  # page size: Quest's 16 tokens

    def decide(self, q, k, budget, q_prev):
        return select_blocks(page_scores(q, k, budget, self.params.block), budget, self.params.block)
