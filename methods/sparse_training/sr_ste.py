"""sr-ste: N:M fine-grained sparsity from scratch with the sparse-refined straight-through estimator.

"Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch"
(Zhou et al. 2021, arXiv:2102.04010): keep dense weights W; each step the
forward uses W~ = E (.) W, E keeping the N largest |W| of every M consecutive
input channels; the gradient g(W~) passes straight through to all of W and is
refined with a decay on the pruned weights:
W <- W - lr (g(W~) + lambda_W (1 - E) (.) W). The mask is recomputed from W
after every step and the final mask is a valid N:M pattern. Layers whose
input dimension is not a multiple of M (the 1-channel stem) stay dense.
"""

from dataclasses import dataclass

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.masking import group_dim, nm_mask
from sparsebench.training.schedule import StepPlan


class SRSTE(SparseTrainingMethod):
    name = "sr-ste"
    display_name = "SR-STE"
    paper = Paper("Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch",
                  "Zhou, Ma, Zhu, Liu, Zhang, Yuan, Sun, Li", 2021, arxiv="2102.04010")
    patterns = ("n:m",)
    zero_masked_weights = False  # the dense weights keep training (that is the estimator)

    @dataclass
    class Params:
        lambda_w: float = 2e-4  # the sparse-refined decay on pruned weights

        def check(self):
            if self.lambda_w < 0:
                raise ValueError(f"lambda_w={self.lambda_w} must be >= 0")

    def _nm_masks(self, trainer, weight_of):
        n, m = trainer.target.pattern.n, trainer.target.pattern.m
        return {k: nm_mask(weight_of(k).detach().abs(), n, m)
                for k, mod in trainer.layers.items() if group_dim(mod.weight.shape) % m == 0}

    def initial_masks(self, trainer):
        return self._nm_masks(trainer, lambda k: trainer.layers[k].weight)

    def schedule(self, trainer, step):
        return StepPlan(trainer.target.sparsity, update=True, dense_grad=True)

    def after_backward(self, trainer, plan):
        lam = self.params.lambda_w
        for name, mask in trainer.masks().items():
            w = trainer.weight(name)
            w.grad = trainer.dense_grads[name] + lam * (~mask) * w.detach()

    def after_step(self, trainer, plan):
        trainer.set_masks(self._nm_masks(trainer, trainer.weight))
