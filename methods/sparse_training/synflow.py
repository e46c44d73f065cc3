"""synflow: data-free iterative pruning at initialisation by synaptic flow, avoiding layer collapse.

"Pruning neural networks without any data by iteratively conserving synaptic
flow" (Tanaka, Kunin, Yamins, Ganguli 2020, arXiv:2006.05467): replace every
parameter by its absolute value, feed an all-ones input, R = 1^T f(1; |theta|);
the score of a weight is |theta (.) dR/dtheta|. Prune in n rounds with an
exponential schedule (density rho^(k/n) after round k, rho the final density),
rescoring the masked network each round; then train the fixed mask. Scoring runs
on a float64 copy in eval mode (batch-norm as its initial affine map), as in the
paper's code.
"""

import copy
from dataclasses import dataclass

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.masks import apply_mask
from sparsebench.method import Paper
from sparsebench.training.distribution import total_keep
from sparsebench.training.masking import global_topk


class SynFlow(SparseTrainingMethod):
    name = "synflow"
    display_name = "SynFlow"
    paper = Paper("Pruning neural networks without any data by iteratively conserving synaptic flow",
                  "Tanaka, Kunin, Yamins, Ganguli", 2020, arxiv="2006.05467")

    @dataclass
    class Params:
        iterations: int = 100  # pruning rounds n

        def check(self):
            if self.iterations < 1:
                raise ValueError(f"iterations={self.iterations} must be >= 1")

    def initial_masks(self, trainer):
        net = copy.deepcopy(trainer.model).double().eval()
        layers = dict(net.named_modules())
        layers = {k: layers[k] for k in trainer.layers}
        with torch.no_grad():
            for t in net.state_dict().values():
                if t.is_floating_point():
                    t.abs_()
        x = torch.ones((1, *trainer.data.train_x.shape[1:]), dtype=torch.float64, device=trainer.device)
        n_total = sum(trainer.numels.values())
        final_keep = total_keep(trainer.numels, trainer.target.sparsity)
        rho = final_keep / n_total
        masks = {k: torch.ones_like(m.weight, dtype=torch.bool) for k, m in layers.items()}
        for k_round in range(1, self.params.iterations + 1):
            for name, m in layers.items():
                apply_mask(m, masks[name])
            params = [m.parametrizations.weight.original for m in layers.values()]
            net.zero_grad(set_to_none=True)
            net(x).sum().backward()
            scores = {name: (p.grad * p).abs().detach() for name, p in zip(layers, params)}
            keep = final_keep if k_round == self.params.iterations else round(n_total * rho ** (k_round / self.params.iterations))
            masks = global_topk(scores, keep)
        trainer.flops.add(self.params.iterations * 3 * trainer.flops.dense_forward)
        return masks
