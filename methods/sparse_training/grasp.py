"""grasp: prune at initialisation so that the gradient flow is preserved, S(-theta) = -theta * Hg.

"Picking Winning Tickets Before Training by Preserving Gradient Flow" (Wang,
Zhang, Grosse 2020, arXiv:2002.07376): with g the gradient of the loss and H the
Hessian at initialisation, removing weights with the largest score
S(-theta) = -theta (.) Hg reduces the gradient norm the least (or increases it);
GraSP removes the top-scoring fraction globally and keeps the rest. Hg is one
Hessian-vector product: the gradient of z = g_stop^T grad L. As in the
paper's code (alecwangcq/GraSP, ``pruner/GraSP.py`` and its configs), the
scoring data are ``samples_per_class`` = 10 training images of every class (the
first ones in the training order), taken in two halves whose gradients are
summed, and logits are divided by a temperature T = 200 for the scoring passes.
"""

from dataclasses import dataclass

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.distribution import total_keep
from sparsebench.training.masking import global_topk


class GraSP(SparseTrainingMethod):
    name = "grasp"
    display_name = "GraSP"
    paper = Paper("Picking Winning Tickets Before Training by Preserving Gradient Flow", "Wang, Zhang, Grosse",
                  2020, arxiv="2002.07376")

    @dataclass
    class Params:
        samples_per_class: int = 10  # class-balanced scoring images (the authors' configs: 10)
        temperature: float = 200.0

        def check(self):
            if self.samples_per_class < 1 or self.temperature <= 0:
                raise ValueError(f"samples_per_class={self.samples_per_class} must be >= 1 and "
                                 f"temperature={self.temperature} > 0")

    def scoring_data(self, trainer) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``samples_per_class`` images of each class, first in epoch 0's order, grouped by class, in two halves."""
        y = trainer.data.train_y
        order = trainer.epoch_order(0)
        per = self.params.samples_per_class
        picked = []
        for c in torch.unique(y).tolist():
            idx = order[y[order] == c][:per]
            if len(idx) < per:
                raise ValueError(f"grasp: samples_per_class={per} but class {c} has only {len(idx)} training images")
            picked.append(idx)
        idx = torch.cat(picked)
        half = len(idx) // 2
        return [(trainer.data.train_x[i], y[i]) for i in (idx[:half], idx[half:])]

    def initial_masks(self, trainer):
        model, layers = trainer.model, trainer.layers
        weights = [m.weight for m in layers.values()]
        batches = self.scoring_data(trainer)
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
        trainer.flops.add((3 + 6) * trainer.flops.dense_forward * sum(len(y) for _, y in batches))
        model.zero_grad(set_to_none=True)
        # Remove the weights with the largest -theta * Hg: keep the k smallest, i.e. the k largest theta * Hg.
        scores = {k: (w.detach() * h) for k, w, h in zip(layers, weights, hg)}
        return global_topk(scores, total_keep(trainer.numels, trainer.target.sparsity))
