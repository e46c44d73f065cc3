"""full-attention: every causal query-key pair, the reference row of every attention table."""

import torch

from sparsebench.attention.pattern import BlockPattern
from sparsebench.families.sparse_attention import SparseAttentionMethod


class FullAttention(SparseAttentionMethod):
    name = "full-attention"
    reference = True  # runs once per task and seed, at density 1

    def decide(self, q, k, budget, q_prev):
        everything = torch.zeros(budget.rows, dtype=torch.long, device=q.device)  # every row from key 0
        return BlockPattern(budget, max(budget.query_block, 16), q.shape[0], q.shape[1], local_start=everything)
