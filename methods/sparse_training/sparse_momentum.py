"""sparse-momentum: prune by magnitude, regrow and redistribute across layers by mean momentum magnitude.

"Sparse Networks from Scratch: Faster Training without Losing Performance"
(Dettmers & Zettlemoyer 2019, arXiv:1907.04840): at the end of each epoch,
(1) each layer removes the fraction p of its active weights with the smallest
magnitude (p cosine-decayed from its initial value to 0 over training);
(2) the removed weights are redistributed over layers in proportion to each
layer's mean momentum magnitude over its active weights (a full layer passes
its excess on); (3) each layer regrows its share at the zero-valued weights
with the largest momentum magnitude; regrown weights start at zero. The
momentum is the exponentially smoothed dense gradient (the SGD momentum
buffer of the dense weight, beta = the recipe's momentum), so every step needs
the dense gradient.
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.dst import drop_smallest, grow_largest, split_by_shares
from sparsebench.training.masking import random_mask
from sparsebench.training.schedule import StepPlan


class SparseMomentum(SparseTrainingMethod):
    name = "sparse-momentum"
    paper = Paper("Sparse Networks from Scratch: Faster Training without Losing Performance",
                  "Dettmers, Zettlemoyer", 2019, arxiv="1907.04840")

    @dataclass
    class Params:
        distribution: Literal["uniform", "erk"] = "uniform"  # initial layer ratios
        prune_rate: float = 0.5  # p at the start, cosine-decayed to 0

        def check(self):
            if not 0 < self.prune_rate < 1:
                raise ValueError(f"prune_rate={self.prune_rate} must be in (0, 1)")

    def __init__(self, params=None):
        super().__init__(params)
        self.momentum: dict[str, torch.Tensor] = {}

    def initial_masks(self, trainer):
        keep = self.budget(trainer, trainer.target.sparsity, self.params.distribution)
        return {k: random_mask(trainer.layers[k].weight.shape, keep[k], trainer.generator) for k in keep}

    def schedule(self, trainer, step):
        epoch_end = (step + 1) % trainer.steps_per_epoch == 0 and step + 1 < trainer.total_steps
        return StepPlan(trainer.target.sparsity, update=epoch_end, dense_grad=True)

    def after_backward(self, trainer, plan):
        beta = trainer.recipe.momentum
        for name, g in trainer.dense_grads.items():
            m = self.momentum.get(name)
            self.momentum[name] = g.detach().clone() if m is None else m.mul_(beta).add_(g.detach())

    def after_step(self, trainer, plan):
        if not plan.update:
            return
        p = self.params.prune_rate * 0.5 * (1.0 + math.cos(math.pi * trainer.step / trainer.total_steps))
        masks = trainer.masks()
        kept, removed, shares, capacity = {}, 0, {}, {}
        for name, mask in masks.items():
            active = int(mask.sum())
            r = min(math.ceil(p * active), active)
            shares[name] = float(self.momentum[name].abs()[mask].mean()) if active else 0.0
            kept[name] = drop_smallest(trainer.weight(name), mask, r)
            capacity[name] = mask.numel() - (active - r)
            removed += r
        regrow = split_by_shares(removed, shares, capacity)
        new = {n: grow_largest(kept[n], self.momentum[n].abs(), regrow[n]) for n in masks}
        trainer.set_masks(new)
