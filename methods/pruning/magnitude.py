"""magnitude (layer-wise): zero the weights of smallest |W| in each layer.

The baseline of every pruning table, e.g. Han et al. 2015, "Learning both
Weights and Connections for Efficient Neural Networks" (arXiv:1506.02626), as
used layer-wise by SparseGPT (arXiv:2301.00774) and Wanda (arXiv:2306.11695).
Unstructured: the smallest round(s * numel) magnitudes of each layer are zeroed.
N:M: the N largest magnitudes of every group of M input weights are kept.
"""

from sparsebench.families.pruning import LayerToPrune, PruningMethod
from sparsebench.masks import mask_from_scores
from sparsebench.method import Paper
from sparsebench.targets import Target


class Magnitude(PruningMethod):
    name = "magnitude"
    paper = Paper(
        "Learning both Weights and Connections for Efficient Neural Networks",
        "Han, Pool, Tran, Dally",
        2015,
        arxiv="1506.02626",
    )
    patterns = ("unstructured", "n:m")

    def prune_layer(self, layer: LayerToPrune, target: Target):
        return mask_from_scores(layer.weight.abs(), target, per="layer")
