"""grasp: prune at initialisation so that the gradient flow is preserved, S(-theta) = -theta * Hg.

"Picking Winning Tickets Before Training by Preserving Gradient Flow" (Wang,
Zhang, Grosse 2020, arXiv:2002.07376): with g the gradient of the loss and H the
Hessian at initialisation, removing weights with the largest score
S(-theta) = -theta (.) Hg reduces the gradient norm the least (or increases it);
GraSP removes the top-scoring fraction globally and keeps the rest. Hg is one
Hessian-vector product: the gradient of z = g_stop^T grad L. As in the
paper's code, logits are divided by a temperature T = 200 for the scoring passes.
"""

from dataclasses import dataclass

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.distribution import total_keep
from sparsebench.training.masking import global_topk


class GraSP(SparseTrainingMethod):
    name = "grasp"
    paper = Paper("Picking Winning Tickets Before Training by Preserving Gradient Flow", "Wang, Zhang, Grosse",
                  2020, arxiv="2002.07376")

    @dataclass
    class Params:
        batches: int = 1  # training minibatches for g and Hg
        temperature: float = 200.0

        def check(self):
            if self.batches < 1 or self.temperature <= 0:
                raise ValueError(f"batches={self.batches} must be >= 1 and temperature={self.temperature} > 0")

    def initial_masks(self, trainer):
        model, layers = trainer.model, trainer.layers
        weights = [m.weight for m in layers.values()]
        batches = trainer.scoring_batches(self.params.batches)
        T = self.params.temperature
        # g: the gradient at initialisation, treated as a constant
        g = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            grads = torch.autograd.grad(trainer.loss(model(x) / T, y), weights)
            g = [a + b.detach() for a, b in zip(g, grads)]
        # Hg = d/dtheta (g^T grad L), one Hessian-vector product per batch
        hg = [torch.zeros_like(w) for w in weights]
        for x, y in batches:
            grads = torch.autograd.grad(trainer.loss(model(x) / T, y), weights, create_graph=True)
            z = sum((a * b).sum() for a, b in zip(grads, g))
            hg = [a + b.detach() for a, b in zip(hg, torch.autograd.grad(z, weights))]
        trainer.flops.add(len(batches) * (3 + 6) * trainer.flops.dense_forward * trainer.recipe.batch_size)
        model.zero_grad(set_to_none=True)
        # Remove the weights with the largest -theta * Hg: keep the k smallest, i.e. the k largest theta * Hg.
        scores = {k: (w.detach() * h) for k, w, h in zip(layers, weights, hg)}
        return global_topk(scores, total_keep(trainer.numels, trainer.target.sparsity))
