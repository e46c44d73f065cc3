"""mustafar: per-token magnitude pruning of the KV cache (unstructured sparsity in K and V).

Mustafar: Promoting Unstructured Sparsity for KV Cache Pruning in LLM
Inference (Joo, Hosseini, Hadidi, Asgari 2025, arXiv:2505.22913): for every
cached token, keep the largest-magnitude entries of its key vector and of its
value vector (per head) and zero the rest; attention then runs over the
pruned cache. Every query still sees every causal key, so the pair density is
1 and the density is the share of K and V entries kept; a density target d
keeps round(d * head_dim) entries per token and head.
"""

import torch

from sparsebench.attention.pattern import BlockPattern
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


def prune_per_token(x: torch.Tensor, keep: int) -> torch.Tensor:
    """Zero all but the ``keep`` largest |x| entries of every token vector (last dim)."""
    if keep >= x.shape[-1]:
        return x
    idx = x.abs().topk(keep, dim=-1).indices
    return torch.zeros_like(x).scatter_(-1, idx, x.gather(-1, idx))


class Mustafar(SparseAttentionMethod):
    name = "mustafar"
    paper = Paper("Mustafar: Promoting Unstructured Sparsity for KV Cache Pruning in LLM Inference",
                  "Joo, Hosseini, Hadidi, Asgari", 2025, arxiv="2505.22913")
    # the sparsity is inside K and V (per element), not in the query-key pairs: a block-sparse
    # attention kernel would visit every causal tile; Mustafar's speed comes from its own sparse
    # KV-cache SpMV kernel, which this harness does not have
    no_block_kernel = "no block-sparse kernel: its sparsity is inside K/V entries (Mustafar's own SpMV kernel)"

    def compress_kv(self, k, v, budget):
        keep = max(1, round(budget.density * k.shape[-1]))
        total = k.numel() + v.numel()
        kept = (k.numel() // k.shape[-1] + v.numel() // v.shape[-1]) * keep
        return prune_per_token(k, keep), prune_per_token(v, keep), (kept, total)

    def decide(self, q, k, budget, q_prev):
        everything = torch.zeros(budget.rows, dtype=torch.long, device=q.device)  # every causal pair
        return BlockPattern(budget, max(budget.query_block, 16), q.shape[0], q.shape[1], local_start=everything)
