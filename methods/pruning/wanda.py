"""Wanda: pruning by weights and activations, compared per output row, without weight update.

Sun, Liu, Bair, Kolter 2023, "A Simple and Effective Pruning Approach for Large
Language Models" (arXiv:2306.11695). The importance of weight W_ij is
S_ij = |W_ij| * ||X_j||_2 (the l2 norm of input feature j over the calibration
tokens); within each output row i the lowest-scoring weights are removed (for
N:M, the lowest inside each group of M inputs). Weights are not updated.
"""

from __future__ import annotations

import torch

from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.masks import mask_from_scores
from sparsebench.method import Paper
from sparsebench.pruning.scores import wanda_scores
from sparsebench.targets import Target


class Wanda(PruningMethod):
    name = "wanda"
    display_name = "Wanda"
    paper = Paper(
        "A Simple and Effective Pruning Approach for Large Language Models",
        "Sun, Liu, Bair, Kolter",
        2023,
        arxiv="2306.11695",
    )
    patterns = ("unstructured", "n:m")
    needs_calibration = True
    needs_gram = False  # only ||X_j||_2 is needed

    def prune_layer(self, layer: LayerToPrune, target: Target) -> torch.Tensor:
        if layer.inputs is None:
            raise ValueError(f"{layer.name}: Wanda needs calibration inputs")
        return mask_from_scores(wanda_scores(layer.weight, layer.inputs.norm_sq), target, per="row")
