"""static-random-erk: a fixed random mask from initialisation with Erdos-Renyi-Kernel layer ratios.

"The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive
Baseline for Sparse Training" (Liu et al. 2022, arXiv:2202.02643): before
training, remove weights of each layer uniformly at random with the ERK
layer-wise ratios of RigL (arXiv:1911.11134; smaller layers denser, dense-ish
layers made dense), then train with the mask fixed.
"""

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.masking import random_mask


class StaticRandomERK(SparseTrainingMethod):
    name = "static-random-erk"
    paper = Paper("The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive Baseline for "
                  "Sparse Training", "Liu, Chen, Chen, Shen, Mocanu, Wang, Pechenizkiy", 2022, arxiv="2202.02643")

    def initial_masks(self, trainer):
        keep = self.budget(trainer, trainer.target.sparsity, "erk")
        return {k: random_mask(trainer.layers[k].weight.shape, keep[k], trainer.generator) for k in keep}
