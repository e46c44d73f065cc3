"""nsa-selection: NSA's block selection and sliding window under one softmax, training-free; not full NSA.

Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse
Attention (Yuan et al. 2025, arXiv:2502.11089). NSA's output is a gated sum of
three attention branches: compressed tokens (blocks of ``l`` keys with stride
``d``, compressed by a learned MLP), selected blocks (blocks of ``l'`` keys
ranked by the compressed attention scores, summed over the heads of a GQA
group, always with the first block), and a sliding window of ``w`` keys,
with learned gates. SmolLM2 was not trained with NSA (no compression MLP, no
gates), so this method is NOT NSA: it keeps only NSA's selection rule and its
window. The block compression is the mean of the keys (used for scoring only;
the compressed branch is not in the output), the selected blocks and the
window form one keep-mask under one softmax (no gates), and in prefill the
rows of a query block (the task's ``query_block``) share one selection, where
NSA selects per query row. The window takes ``window_fraction`` of the budget,
the selected blocks the rest.
"""

from dataclasses import dataclass

import torch

from sparsebench.attention.select import group_max, positions, select_blocks, solve_window
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


def compressed_keys(k, length, stride):
    """Mean of each block of ``length`` keys, blocks every ``stride`` keys: (B, H, blocks, D) and block ends."""
    keys = k.shape[2]
    starts = torch.arange(0, max(keys - length, 0) + 1, stride)
    idx = starts[:, None] + torch.arange(length)[None, :]
    return k[:, :, idx.clamp(max=keys - 1)].mean(dim=3), starts + length - 1, starts


class NSASelection(SparseAttentionMethod):
    name = "nsa-selection"
    display_name = "NSA (selection branch)"
    paper = Paper("Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention",
                  "Yuan, Gao, Dai, Luo, Zhao, Zhang, Xie, Wei, Wang, Xiao, Wang, Ruan, Zhang, Liang, Zeng", 2025,
                  arxiv="2502.11089")
    patterns = ("unstructured", "block")

    @dataclass
    class Params:
        compress_block: int = 32  # l (paper: 32)
        compress_stride: int = 16  # d (paper: 16)
        block: int = 64  # l', the selection block (paper: 64)
        window_fraction: float = 0.25  # share of the budget for the sliding window (paper: w=512 of 64k)

    def decide(self, q, k, budget, q_prev):
        p = self.params
        pos = positions(budget, q.device)
        kc, ends, starts = compressed_keys(k, p.compress_block, p.compress_stride)
        visible = ends.to(q.device)[None, :] <= pos[:, None]
        logits = (q @ kc.transpose(-1, -2) * q.shape[-1] ** -0.5).masked_fill(~visible, float("-inf"))
        p_cmp = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)  # rows with no complete block yet: 0
        # selection block j gathers the compressed blocks that overlap it (NSA eq. 9)
        nb = -(-budget.keys // p.block)
        blk = torch.arange(nb)
        overlap = ((starts[:, None] < (blk[None, :] + 1) * p.block) & (ends[:, None] >= blk[None, :] * p.block))
        p_slc = p_cmp @ overlap.to(p_cmp.dtype).to(q.device)
        # heads of one GQA group share their selection (NSA eq. 10)
        groups = budget.kv_heads or q.shape[1]
        b, h = p_slc.shape[:2]
        p_slc = p_slc.reshape(b, groups, h // groups, *p_slc.shape[2:]).sum(dim=2).repeat_interleave(h // groups, dim=1)
        scores = group_max(p_slc, budget.row_block)
        scores[..., 0] = float("inf")  # the initial block is always selected
        window = solve_window(budget, p.window_fraction * budget.density * budget.causal_pairs())
        return select_blocks(scores, budget, p.block, local=window)
