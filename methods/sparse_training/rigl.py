"""rigl: Rigged Lottery, prune the smallest weights and regrow where the dense gradient is largest.

"Rigging the Lottery: Making All Tickets Winners" (Evci, Gale, Menick, Castro,
Elsen 2020, arXiv:1911.11134): every Delta_T steps until T_end, each layer
drops the fraction f_decay(t) = alpha/2 (1 + cos(pi t / T_end)) of its active
weights with the smallest magnitude and grows as many inactive connections with
the largest |dL/dW| of the dense gradient; grown connections start at zero. The
sparsity of each layer stays fixed (ERK by default). The dense gradient is the
gradient with respect to the effective weight W * M, which the core provides on
update steps only (the FLOP count charges those steps a dense weight gradient).
As in the authors' code (``SparseRigLOptimizerBase.apply_gradients``), a mask-
update step does not apply its gradient: the optimizer skips that step. Delta_T
is the paper's 100 steps, capped on short runs (``sparsebench.training.dynamic``).
"""

from sparsebench.method import Paper
from sparsebench.training.dynamic import PruneAndRegrow


class RigL(PruneAndRegrow):
    name = "rigl"
    display_name = "RigL"
    paper = Paper("Rigging the Lottery: Making All Tickets Winners", "Evci, Gale, Menick, Castro, Elsen", 2020,
                  arxiv="1911.11134")
    needs_dense_grad = True
    skip_step_on_update = True

    def grow_score(self, trainer, name):
        return trainer.dense_grads[name].abs()
