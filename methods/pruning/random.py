"""random: zero a uniformly random subset of each layer's weights (the naive baseline).

Unstructured: exactly round(s * numel) weights of each layer, chosen uniformly.
N:M: N weights kept uniformly at random in every group of M. Seeded by the job.
"""

import torch

from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.masks import mask_from_scores
from sparsebench.method import Paper
from sparsebench.targets import Target


class RandomPruning(PruningMethod):
    name = "random"
    paper = Paper(
        "The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for Sparse Training",
        "Liu, Chen, Chen, Atashgahi, Yin, Kou, Shen, Pechenizkiy, Wang, Mocanu",
        2022,
        arxiv="2202.02643",
    )
    patterns = ("unstructured", "n:m")

    def prune_layer(self, layer: LayerToPrune, target: Target):
        scores = torch.rand(layer.weight.shape, generator=layer.generator)
        return mask_from_scores(scores, target, per="layer")
