"""static-random-uniform: a fixed random mask from initialisation, the same sparsity in every layer.

"The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive
Baseline for Sparse Training" (Liu et al. 2022, arXiv:2202.02643): before
training, remove weights of each layer uniformly at random according to a
layer-wise ratio, then train the sparse network with its mask fixed. Uniform
ratios: every layer at one sparsity except the input stem, kept dense at every
budget as RigL's uniform baseline keeps its stem convolution unmasked (timm's
deep stem has three convolutions, all kept; the classifier is pruned like the
other layers, as in the reference code). The other layers take up the stem's
share so the global count is exact; see ``sparsebench.training.distribution``.
"""

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.masking import random_mask


class StaticRandomUniform(SparseTrainingMethod):
    name = "static-random-uniform"
    paper = Paper("The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for "
                  "Sparse Training", "Liu, Chen, Chen, Shen, Mocanu, Wang, Pechenizkiy", 2022, arxiv="2202.02643")
    distribution = "uniform"

    def initial_masks(self, trainer):
        keep = self.budget(trainer, trainer.target.sparsity, self.distribution)
        return {k: random_mask(trainer.layers[k].weight.shape, keep[k], trainer.generator) for k in keep}
