"""snip: prune once at initialisation by connection sensitivity |g * w|, then train the fixed mask.

"SNIP: Single-shot Network Pruning based on Connection Sensitivity" (Lee,
Ajanthan, Torr 2019, arXiv:1810.02340): on a minibatch of training data at
initialisation, the sensitivity of connection j is s_j = |dL/dc_j| = |g_j w_j|
(c the multiplicative mask at 1), normalised over the network; keep the top-k
connections globally and train the resulting sparse network.
"""

from dataclasses import dataclass


from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.distribution import total_keep
from sparsebench.training.masking import global_topk


class SNIP(SparseTrainingMethod):
    name = "snip"
    display_name = "SNIP"
    paper = Paper("SNIP: Single-shot Network Pruning based on Connection Sensitivity", "Lee, Ajanthan, Torr",
                  2019, arxiv="1810.02340")

    @dataclass
    class Params:
        batches: int = 1  # training minibatches the sensitivity is accumulated over

        def check(self):
            if self.batches < 1:
                raise ValueError(f"batches={self.batches} must be >= 1")

    def initial_masks(self, trainer):
        model, layers = trainer.model, trainer.layers
        model.zero_grad(set_to_none=True)
        for x, y in trainer.scoring_batches(self.params.batches):
            trainer.loss(model(x), y).backward()
            trainer.flops.add(3 * trainer.flops.dense_forward * len(y))
        scores = {k: (m.weight.grad * m.weight).abs().detach() for k, m in layers.items()}
        model.zero_grad(set_to_none=True)
        total = sum(s.sum() for s in scores.values())
        scores = {k: s / total for k, s in scores.items()}  # the paper's normalisation (does not change the ranking)
        return global_topk(scores, total_keep(trainer.numels, trainer.target.sparsity))


