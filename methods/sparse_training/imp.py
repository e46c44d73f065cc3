"""imp: iterative magnitude pruning with weight rewinding (lottery tickets).

"Linear Mode Connectivity and the Lottery Ticket Hypothesis" (Frankle,
Dziugaite, Roy, Carbin 2020, arXiv:1912.05671), building on "The Lottery Ticket
Hypothesis" (Frankle & Carbin 2019, arXiv:1803.03635): train the network to the
end, remove the smallest-magnitude surviving weights globally, rewind the
surviving weights to their values at an early step k, and train again from
step k; repeat until the target sparsity. Each of the ``rounds`` rounds removes
the same fraction of the survivors (sparsity 1 - (1 - S)^(r/R) after round r).
The papers use 20 % per round; the default here uses 3 rounds to fit the
benchmark's time budget, and the FLOP count charges every round.
"""

import math
from dataclasses import dataclass

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.distribution import total_keep
from sparsebench.training.masking import global_topk
from sparsebench.training.schedule import StepPlan


class IMP(SparseTrainingMethod):
    name = "imp"
    paper = Paper("Linear Mode Connectivity and the Lottery Ticket Hypothesis",
                  "Frankle, Dziugaite, Roy, Carbin", 2020, arxiv="1912.05671")

    @dataclass
    class Params:
        rounds: int = 3  # prune-rewind-retrain rounds after the first dense training
        rewind_fraction: float = 0.05  # rewind point k as a fraction of training

        def check(self):
            if self.rounds < 1 or not 0 <= self.rewind_fraction < 1:
                raise ValueError(f"rounds={self.rounds} >= 1 and rewind_fraction={self.rewind_fraction} "
                                 "in [0, 1) are required")

    def __init__(self, params=None):
        super().__init__(params)
        self.current_sparsity = 0.0

    def schedule(self, trainer, step):
        return StepPlan(self.current_sparsity)

    def train(self, trainer):
        S, R = trainer.target.sparsity, self.params.rounds
        trainer.set_masks({k: torch.ones_like(m.weight, dtype=torch.bool) for k, m in trainer.layers.items()})
        k = round(self.params.rewind_fraction * trainer.total_steps)
        rewind: dict = {} if k > 0 else trainer.snapshot()

        def keep_rewind_point(tr):
            if tr.step + 1 == k:
                rewind.update(tr.snapshot())

        self.current_sparsity = 0.0
        trainer.fit(on_step=keep_rewind_point)
        for r in range(1, R + 1):
            self.current_sparsity = S if r == R else 1.0 - (1.0 - S) ** (r / R)
            scores = {n: torch.where(trainer.mask(n), trainer.weight(n).detach().abs(), torch.tensor(-math.inf))
                      for n in trainer.layers}
            masks = global_topk(scores, total_keep(trainer.numels, self.current_sparsity))
            trainer.restore(rewind)
            trainer.set_masks(masks)
            trainer.log(f"IMP round {r}/{R}: sparsity {self.current_sparsity:.4f}, rewound to step {k}")
            trainer.fit(start_step=k)
