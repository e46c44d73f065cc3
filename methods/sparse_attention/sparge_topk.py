"""sparge-topk: SpargeAttn's pooled block prediction and stage 2 without its similarity guard (our variant).

SpargeAttn (Zhang et al. 2025, arXiv:2502.18137; see ``sparge``) always
computes the blocks whose tokens are not self-similar. On SmolLM2 at 2k tokens
its default guard (mean-subtracted keys, similarity above 0.6) finds nearly no
block self-similar, so ``sparge`` computes ~99 % of the pairs at any target.
This variant predicts every block: stage 1 is the top-k of the pooled
attention map softmax(q̄ k̄ᵀ) within the density budget, stage 2 the same
online softmax-aware skipping. It is what this benchmark called "sparge"
before the method followed the paper (its guard, on raw keys at 0.3, flagged
no block on this model).
"""

from dataclasses import dataclass

from sparsebench.registry import sibling_module

SpargeAttn = sibling_module(__file__, "sparge").SpargeAttn


class SpargeTopK(SpargeAttn):
    name = "sparge-topk"
    display_name = "SpargeAttn (top-k)"
    may_overspend = False  # no forced blocks: the budget binds (stage 2 may only spend less)

    @dataclass
    class Params(SpargeAttn.Params):
        theta: float = -1.0  # every block counts as self-similar: none is forced
