"""sparge: SpargeAttn's two-stage filter: predict the block map from pooled q/k, then skip blocks softmax-aware.

SpargeAttn: Accurate Sparse Attention Accelerating Any Model Inference (Zhang
et al. 2025, arXiv:2502.18137; code: thu-ml/SpargeAttn). Stage 1: pool every
query block and key block to its mean token; blocks whose tokens are not
self-similar (mean pairwise cosine similarity not above ``theta``) cannot be
predicted that way and are always computed; the rest are ranked by the pooled
attention map softmax(q̄ k̄ᵀ). As in the authors' code, the key similarity is
measured on the keys minus their mean over the sequence (``smooth_k``: the
shared component would make every block look alike) and ``theta`` is 0.6
(their default ``simthreshd1``); query blocks are compared raw. Stage 2
(online softmax-aware filter): while the kernel walks the kept key blocks of
a query block in order, it skips a block when its largest score is below the
running row maximum by more than ``-lam`` for every row (its exp-weights would
be < e^lam).

What differs: stage 1 keeps the top-ranked blocks within the density budget
(the authors' ``topk`` mode; their default keeps a cumulative pooled mass
``cdfthreshd`` 0.98), and blocks to be always computed come first within that
budget rather than on top of it; a query block is the task's ``query_block``
rows (the authors: 128) and key blocks are 64 tokens (theirs too); the
authors tune ``lam`` (and theta, tau) per layer on calibration data, we use
one ``lam`` for every layer. Stage 2 may only lower the density.
"""

from dataclasses import dataclass

import torch

from sparsebench.attention.pattern import BlockPattern
from sparsebench.attention.select import block_stats, positions, select_blocks
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


def self_similarity(x: torch.Tensor, block: int) -> torch.Tensor:
    """Mean pairwise cosine similarity of the tokens of each block: (B, H, blocks); a last, partial block
    over its own tokens only."""
    b, h, n, d = x.shape
    pad = (-n) % block
    xn = torch.nn.functional.normalize(x, dim=-1)
    if pad:
        xn = torch.cat([xn, xn.new_zeros(b, h, pad, d)], dim=2)
    xn = xn.reshape(b, h, -1, block, d)
    # mean of the Gram matrix = |sum of the unit vectors|^2 / tokens^2 (no block x block matrix)
    tokens = torch.full((xn.shape[2],), float(block), device=x.device)
    if pad:
        tokens[-1] = block - pad
    return xn.sum(dim=3).pow(2).sum(dim=-1) / tokens ** 2


class SpargeAttn(SparseAttentionMethod):
    name = "sparge"
    display_name = "SpargeAttn"
    paper = Paper("SpargeAttn: Accurate Sparse Attention Accelerating Any Model Inference",
                  "Zhang, Xiang, Huang, Wei, Xi, Zhu, Chen", 2025, arxiv="2502.18137")
    patterns = ("unstructured", "block")
    may_underspend = True  # stage 2 skips blocks after the budgeted selection
    may_overspend = True  # blocks that are not self-similar are always computed, whatever the budget

    @dataclass
    class Params:
        block: int = 64  # key block (the authors' 64)
        theta: float = 0.6  # self-similarity at or below which a block is always computed (authors: 0.6)
        smooth_k: bool = True  # key similarity on keys minus their mean over the sequence (authors: on)
        lam: float = -12.0  # stage-2 skip threshold on (block max - running max)

    def decide(self, q, k, budget, q_prev):
        p = self.params
        g = budget.row_block
        _, _, k_mean = block_stats(k, p.block)
        q_mean = block_stats(q, g)[2] if g > 1 else q
        pos = positions(budget, q.device)
        kb_end = torch.clamp((torch.arange(k_mean.shape[2], device=q.device) + 1) * p.block - 1, max=budget.keys - 1)
        first_row = pos[::g]
        visible = kb_end[None, :] <= first_row[:, None]
        # scored in float32: -1e9 (a row that sees no whole block gets a uniform row, not NaN) overflows float16
        scores = q_mean.float() @ k_mean.float().transpose(-1, -2) * q.shape[-1] ** -0.5
        pred = torch.softmax(scores.masked_fill(~visible, -1e9), -1)
        k_for_sim = k - k.mean(dim=2, keepdim=True) if p.smooth_k else k
        k_sim = self_similarity(k_for_sim, p.block) > p.theta
        forced = ~k_sim[:, :, None, :].expand_as(pred)
        if g > 1:
            q_sim = self_similarity(q, g) > p.theta
            forced = forced | ~q_sim[..., None]
        # blocks that cannot be predicted are computed: the budget pays for them first (+inf), and those
        # it cannot pay for are added on top (the measured density then exceeds the target)
        forced = forced & visible
        stage1 = select_blocks(pred.masked_fill(forced, float("inf")), budget, p.block)
        if budget.density >= 1:
            return stage1
        table = stage1.block_table() | forced
        stage1 = BlockPattern(budget, p.block, q.shape[0], q.shape[1], blocks=table)
        # stage 1's blocks (its diagonal region is block-aligned) minus the blocks stage 2 skips;
        # each row keeps itself, as in every pattern
        blocks = table & self.online_skip(q, k, stage1.token_mask, budget)
        return BlockPattern(budget, p.block, q.shape[0], q.shape[1], blocks=blocks)

    def online_skip(self, q, k, keep_rows, budget, chunk: int = 128):
        """Stage 2: the kept key blocks (B, H, groups, key blocks) whose scores do not all stay e^lam below the
        running row maximum. ``keep_rows(r0, r1)``: stage 1's keep-mask of rows r0..r1-1 (over keys up to
        q0 + r1); rows are scored a chunk of whole groups at a time, as the kernel scores them online."""
        p = self.params
        g, blk = budget.row_block, p.block
        nkb = -(-budget.keys // blk)
        chunk = max(g, chunk // g * g)
        skips = []
        for r0 in range(0, budget.rows, chunk):
            r1 = min(budget.rows, r0 + chunk)
            keys = budget.q0 + r1
            pos = torch.arange(budget.q0 + r0, budget.q0 + r1, device=q.device)
            s = (q[:, :, r0:r1] @ k[:, :, :keys].transpose(-1, -2)) * q.shape[-1] ** -0.5
            s = s.masked_fill(~keep_rows(r0, r1)[..., :keys] | (torch.arange(keys, device=q.device)[None, :] > pos[:, None]),
                              float("-inf"))
            s = torch.nn.functional.pad(s, (0, nkb * blk - keys), value=float("-inf"))
            block_max = s.reshape(*s.shape[:3], nkb, blk).amax(dim=-1)  # (B, H, rows, key blocks)
            running = torch.cummax(block_max, dim=-1).values
            before = torch.nn.functional.pad(running[..., :-1], (1, 0), value=float("-inf"))
            gap = block_max - before
            pad_r = (-(r1 - r0)) % g
            if pad_r:
                gap = torch.nn.functional.pad(gap, (0, 0, 0, pad_r), value=float("-inf"))
            skips.append(gap.reshape(*gap.shape[:2], -1, g, nkb).amax(dim=3) < p.lam)  # every row of a group agrees
        # the first kept block has gap +inf; blocks not kept are -inf and dropped anyway
        return ~torch.cat(skips, dim=2)
