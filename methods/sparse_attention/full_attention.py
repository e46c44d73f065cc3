"""full-attention: every causal query-key pair, the reference row of every attention table."""

import torch

from sparsebench.families.sparse_attention import SparseAttentionMethod


class FullAttention(SparseAttentionMethod):
    name = "full-attention"
    reference = True  # runs once per task and seed, at density 1

    def select(self, q, k, budget, q_prev):
        return torch.ones(q.shape[0], q.shape[1], budget.rows, budget.keys, dtype=torch.bool, device=q.device)
