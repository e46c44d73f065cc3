"""vertical-slash: per head, the vertical (key) and slash (diagonal) lines the last queries attend most.

MInference 1.0: Accelerating Pre-filling for Long-Context LLMs via Dynamic
Sparse Attention (Jiang et al. 2024, arXiv:2407.02490), the "A-shape /
vertical-slash" pattern: compute softmax(q_last k^T) for the last ``last_q``
queries, sum it over those queries per key (vertical scores) and per
diagonal offset i - j (slash scores), always include the first 30 keys and
the nearest 100 diagonals (as the authors' kernel does: ``sink_lines``,
``local_lines``), and keep the top vertical and slash lines. MInference is a
prefill method: decoding is dense, so the job measures the prefill phase only.

What differs: the lines are taken in order of their estimated mass (the
forced ones first) until the kept pairs meet the density budget, where
MInference fixes line counts per head from an offline search; at low
densities on 2k tokens the budget runs out before all forced lines are taken
(those with the most estimated mass are taken first)
(100 slash lines alone cover ~11 % of a 1792-token prompt's pairs). Every head
uses the vertical-slash pattern: MInference's offline per-head choice among
A-shape, vertical-slash and block-sparse is not made.
"""

from dataclasses import dataclass

import torch

from sparsebench.attention.pattern import LinePattern
from sparsebench.attention.select import positions
from sparsebench.families.sparse_attention import SparseAttentionMethod
from sparsebench.method import Paper


FORCED = 1e9


def line_scores(q_est, k, est_pos, scaling):
    """Vertical (B, H, keys) and slash (B, H, offsets) attention mass of the estimation queries."""
    keys = k.shape[2]
    j = torch.arange(keys, device=k.device)
    visible = j[None, :] <= est_pos[:, None]
    p = torch.softmax((q_est @ k.transpose(-1, -2) * scaling).masked_fill(~visible, float("-inf")), dim=-1)
    vertical = p.sum(dim=-2)
    offset = (est_pos[:, None] - j[None, :]).clamp(min=0).expand_as(p).reshape(*p.shape[:2], -1)
    slash = torch.zeros_like(vertical).scatter_add_(-1, offset, (p * visible).reshape(*p.shape[:2], -1))
    return vertical, slash


def line_pairs(vkeep, skeep, cover, q0: int, last: int) -> torch.Tensor:
    """Causal pairs (B, H) kept by vertical lines ``vkeep`` and slash lines ``skeep`` (B, H, keys) among rows
    q0 .. last - 1, counted without building the mask: each line's own pairs (``cover``) minus the pairs
    on both a vertical line j and a slash line o, i.e. rows i = j + o in range: the convolution of the two
    line sets, summed over q0 .. last - 1 (an FFT in float64; counts stay exact after rounding)."""
    v, s = vkeep.double(), skeep.double()
    own = v @ cover + s @ cover
    n = 2 * v.shape[-1]
    both = torch.fft.irfft(torch.fft.rfft(v, n) * torch.fft.rfft(s, n), n)[..., q0:last]
    return own - torch.round(both).sum(dim=-1)


class VerticalSlash(SparseAttentionMethod):
    name = "vertical-slash"
    display_name = "vertical-slash (MInference)"
    paper = Paper("MInference 1.0: Accelerating Pre-filling for Long-Context LLMs via Dynamic Sparse Attention",
                  "Jiang, Li, Zhang, Wu, Luo, Ahn, Han, Abdi, Li, Lin, Yang, Qiu", 2024, arxiv="2407.02490")
    phases = ("prefill",)  # MInference decodes densely

    @dataclass
    class Params:
        last_q: int = 64  # MInference's estimation queries
        sink_lines: int = 30  # vertical lines always kept (the first keys; MInference: 30)
        local_lines: int = 100  # slash lines always kept (the nearest diagonals; MInference: 100)

    def decide(self, q, k, budget, q_prev):
        p = self.params
        pos = positions(budget, q.device)
        if budget.density >= 1:  # every vertical line
            every = torch.ones(q.shape[0], q.shape[1], budget.keys, dtype=torch.bool, device=q.device)
            return LinePattern(budget, every, every.clone())
        if budget.phase == "decode" and q_prev is not None:
            q_est = q_prev
            est_pos = torch.arange(budget.q0 - q_prev.shape[2], budget.q0, device=q.device)
        else:
            q_est, est_pos = q[:, :, -p.last_q :], pos[-p.last_q :]
        vertical, slash = (x.double() for x in line_scores(q_est, k, est_pos, q.shape[-1] ** -0.5))
        # forced lines first, among themselves by their estimated mass (the budget may not pay for all);
        # the masses are softmax sums <= last_q, so +FORCED (in float64: the masses stay resolved) puts
        # every forced line above every other
        vertical[..., : p.sink_lines] += FORCED
        slash[..., : p.local_lines] += FORCED
        keys, last = budget.keys, budget.q0 + budget.rows
        # pairs each line covers among the sparse rows: rows i >= max(q0, line start)
        cover = (last - torch.clamp(torch.arange(keys, device=q.device), min=budget.q0)).clamp(min=0)
        scores = torch.cat([vertical, slash], dim=-1)
        covers = torch.cat([cover, cover]).double()
        cover = cover.double()
        order = scores.argsort(dim=-1, descending=True, stable=True)
        goal = budget.density * budget.causal_pairs()
        taken = torch.zeros_like(scores, dtype=torch.bool)
        need = torch.full(scores.shape[:2], goal, dtype=torch.float64, device=q.device)
        for _ in range(3):  # lines overlap, so top up the shortfall a few times
            new_cover = covers[order] * (~taken.gather(-1, order))  # lines already taken cost nothing
            before = torch.cumsum(new_cover, dim=-1) - new_cover
            add = torch.zeros_like(taken).scatter_(-1, order, before < need[..., None])
            taken |= add
            need = goal - line_pairs(taken[..., :keys], taken[..., keys:], cover, budget.q0, last)
            if bool((need <= 0.5 * budget.rows).all()):
                break
        return LinePattern(budget, taken[..., :keys], taken[..., keys:])
