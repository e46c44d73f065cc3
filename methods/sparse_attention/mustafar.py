"""mustafar: per-token magnitude pruning of the KV cache (unstructured sparsity in K and V), for decode.

Mustafar: Promoting Unstructured Sparsity for KV Cache Pruning in LLM
Inference (Joo, Hosseini, Hadidi, Asgari 2025, arXiv:2505.22913; code:
dhjoo98/mustafar): for every cached token, keep the largest-magnitude entries
of its key vector and of its value vector (per head) and zero the rest. As in
the authors' code (``models/llama_mustafar_Kt_Mag_Vt_Mag.py``): the prompt
attends with its unpruned K/V; what enters the cache is pruned, except the
most recent ``window`` tokens (their ``residual_length``, 128), which stay
dense; decode attends over that cache. So only decode is sparse and the job
measures the decode phase only. Every query still sees every causal key (pair
density 1): the density is the share of K/V entries each decode row reads,
the dense window included, so it is above the target (the target sets the
entries kept per pruned token: round(d * head_dim)) and is not a pair density
(the report plots it on its own axis).

What differs: the scored continuation runs as one forward over the cached
prompt, so every continuation row sees the prompt pruned up to ``window``
tokens before the first row and the continuation itself dense; Mustafar,
decoding token by token, would also prune the continuation tokens that fall
out of the window (rows late in a 256-token continuation see up to 255 more
dense tokens here; they are counted in the density).
"""

from dataclasses import dataclass

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


def entries_read(q0: int, rows: int, pruned: int, keep: int, dim: int) -> tuple[int, int]:
    """(kept, total) K-or-V entries the rows q0 .. q0 + rows - 1 read when the first ``pruned`` tokens keep
    ``keep`` of ``dim`` entries and the rest are dense."""
    seen = torch.arange(q0 + 1, q0 + rows + 1, dtype=torch.long)
    sparse = seen.clamp(max=pruned)
    return int((sparse * keep + (seen - sparse) * dim).sum()), int((seen * dim).sum())


class Mustafar(SparseAttentionMethod):
    name = "mustafar"
    display_name = "Mustafar"
    paper = Paper("Mustafar: Promoting Unstructured Sparsity for KV Cache Pruning in LLM Inference",
                  "Joo, Hosseini, Hadidi, Asgari", 2025, arxiv="2505.22913")
    phases = ("decode",)
    density_kind = "kv"
    may_overspend = True  # the dense recent window comes on top of the per-token budget
    # the sparsity is inside K and V (per element), not in the query-key pairs: a block-sparse
    # attention kernel would visit every causal tile; Mustafar's speed comes from its own sparse
    # KV-cache SpMV kernel, which this harness does not have
    no_block_kernel = "no block-sparse kernel: its sparsity is inside K/V entries (Mustafar's own SpMV kernel)"

    @dataclass
    class Params:
        window: int = 128  # recent tokens kept dense (the authors' residual_length)

        def check(self):
            if self.window < 0:
                raise ValueError(f"window={self.window} must be >= 0")

    def compress_kv(self, k, v, budget):
        dim = k.shape[-1]
        keep = max(1, round(budget.density * dim))
        # tokens older than the window at the first sparse row were pruned as they left it
        pruned = max(0, budget.q0 + 1 - self.params.window) if budget.density < 1 else 0
        if pruned:
            k = torch.cat([prune_per_token(k[:, :, :pruned], keep), k[:, :, pruned:]], dim=2)
            v = torch.cat([prune_per_token(v[:, :, :pruned], keep), v[:, :, pruned:]], dim=2)
        kept, total = entries_read(budget.q0, budget.rows, pruned, keep, dim)
        units = 2 * k.shape[0] * k.shape[1]  # K and V of every (batch, KV head)
        return k, v, (kept * units, total * units)

    def decide(self, q, k, budget, q_prev):
        everything = torch.zeros(budget.rows, dtype=torch.long, device=q.device)  # every causal pair
        return BlockPattern(budget, max(budget.query_block, 16), q.shape[0], q.shape[1], local_start=everything)
