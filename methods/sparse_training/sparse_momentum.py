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

Details from the authors' code (TimDettmers/sparse_learning, ``core.py``),
which the paper leaves out and without which small layers can be drained to
zero weights on a narrow network: a layer regrows ``ceil(share * removed)`` (at
least one weight while its momentum is non-zero), fills at most 99 % of its free
slots with the rest spread evenly (:func:`momentum_regrowth`); a nearly dense
layer (sparsity < 0.2) whose share is above the uniform 1/L prunes at most its
sparsity. The momentum is the optimizer's own momentum buffer there, which
keeps accumulating the dense gradient at inactive positions (the code masks the
weights, not the buffer), so a regrown weight starts at zero with the momentum
that selected it: here the core zeroes the buffer of masked weights, and the
method writes its dense momentum back into the optimizer's buffer at regrown
positions. (An early version of the code reset inactive momentum to the active
mean, only for per-k-step updates; the authors removed it, so it is not done
here.) We keep the total count exact at every update (the code corrects its
drift over later updates instead).
"""

import math
from dataclasses import dataclass
from typing import Literal

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.dst import drop_smallest, grow_largest, momentum_regrowth
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
        masks = {n: m.clone() for n, m in trainer.masks().items()}  # set_masks updates masks in place
        shares = {n: float(self.momentum[n].abs()[m].mean()) if m.any() else 0.0 for n, m in masks.items()}
        total_share = sum(shares.values()) or 1.0
        kept, removed, capacity = {}, {}, {}
        for name, mask in masks.items():
            active = int(mask.sum())
            sparsity = 1.0 - active / mask.numel()
            rate = p
            if sparsity < 0.2 and shares[name] / total_share > 1.0 / len(masks):  # dense and still growing
                rate = min(sparsity, p)
            removed[name] = min(math.ceil(rate * active), active)
            kept[name] = drop_smallest(trainer.weight(name), mask, removed[name])
            capacity[name] = mask.numel() - (active - removed[name])
        regrow = momentum_regrowth(removed, shares, capacity)
        new = {n: grow_largest(kept[n], self.momentum[n].abs(), regrow[n]) for n in masks}
        trainer.set_masks(new)  # regrown weights start at zero ...
        with torch.no_grad():
            for n, m in new.items():  # ... with the momentum that selected them
                buf = trainer.momentum(n)
                grown = m & ~masks[n]
                if buf is not None:
                    buf[grown] = self.momentum[n][grown]
