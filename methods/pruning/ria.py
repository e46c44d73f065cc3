"""RIA: relative importance of a weight within its row and column, times the activation norm.

Zhang, Zhao, Lin, Su, Zhang, Li, Wang, Li, Bian, Zhang 2024, "Plug-and-Play: An
Efficient Post-training Pruning Method for Large Language Models" (ICLR 2024).
The score of W_ij is

    RIA_ij = ( |W_ij| / sum_k |W_kj|  +  |W_ij| / sum_k |W_ik| ) * ||X_j||_2 ^ a

(relative importance over input column j and output row i, scaled by the
calibration activation norm of input j to the power a = 0.5). No weight update.

Comparison group, as in the authors' default run (``per_outneuron`` off): the
whole layer for unstructured targets; inside each group of M inputs of a row
for N:M. The authors' code thresholds with ``<=`` (on ties it prunes one weight
more than ``s * numel``); we prune exactly ``round(s * numel)``. Their optional
channel reallocation / linear-sum-assignment permutation before N:M (the
``--reallocation --lsa`` flags) is not part of this method: a permuted mask is
N:M only in the permuted column order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.masks import mask_from_scores
from sparsebench.method import Paper
from sparsebench.targets import Target


def ria_scores(weight: torch.Tensor, norm_sq: torch.Tensor, a: float = 0.5) -> torch.Tensor:
    """RIA_ij = (|W_ij| / column sum + |W_ij| / row sum) * ||X_j||_2^a."""
    w = weight.abs().float()
    relative = w / w.sum(dim=0, keepdim=True) + w / w.sum(dim=1, keepdim=True)
    return relative * norm_sq.float().sqrt().pow(a).reshape(1, -1)


class RIA(PruningMethod):
    name = "ria"
    display_name = "RIA"
    paper = Paper(
        "Plug-and-Play: An Efficient Post-training Pruning Method for Large Language Models",
        "Zhang, Zhao, Lin, Su, Zhang, Li, Wang, Li, Bian, Zhang",
        2024,
        venue="ICLR 2024",
    )
    patterns = ("unstructured", "n:m")
    needs_calibration = True
    needs_gram = False  # only ||X_j||_2 is needed

    @dataclass
    class Params:
        a: float = 0.5  # exponent of the activation norm (the authors' default)

        def check(self):
            if not 0.0 <= self.a <= 2.0:
                raise ValueError(f"a={self.a} is outside [0, 2]")

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        if layer.inputs is None:
            raise ValueError(f"{layer.name}: RIA needs calibration inputs")
        scores = ria_scores(layer.weight, layer.inputs.norm_sq, self.params.a)
        return mask_from_scores(scores, target, per="layer")
