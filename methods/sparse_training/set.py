"""set: Sparse Evolutionary Training, prune the smallest weights and regrow as many at random.

"Scalable training of artificial neural networks with adaptive sparse
connectivity inspired by network science" (Mocanu et al. 2018, Nature
Communications 9:2383, arXiv:1707.04780): start from an Erdos-Renyi sparse
topology; periodically remove the fraction zeta of active weights closest to
zero in each layer and add the same number of new connections at random.
Layer ratios (ERK), update cadence and the cosine-decayed fraction follow the
RigL paper's SET baseline (arXiv:1911.11134), so SET and RigL differ only in
the grow criterion (SET applies the optimizer step and then updates the mask,
as RigL's SET baseline code does); new connections start at zero. Delta_T is
the RigL paper's 100 steps, capped on short runs (``sparsebench.training.dynamic``);
SET's own paper updates once per epoch.
"""

import torch

from sparsebench.method import Paper
from sparsebench.training.dynamic import PruneAndRegrow


class SET(PruneAndRegrow):
    name = "set"
    display_name = "SET"
    paper = Paper("Scalable training of artificial neural networks with adaptive sparse connectivity inspired "
                  "by network science", "Mocanu, Mocanu, Stone, Nguyen, Gibescu, Liotta", 2018,
                  arxiv="1707.04780", venue="Nature Communications")

    def grow_score(self, trainer, name):
        return torch.rand(trainer.layers[name].weight.shape, generator=trainer.generator)
