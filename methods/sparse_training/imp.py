"""imp: iterative magnitude pruning with weight rewinding (lottery tickets).

"Linear Mode Connectivity and the Lottery Ticket Hypothesis" (Frankle,
Dziugaite, Roy, Carbin 2020, arXiv:1912.05671), building on "The Lottery Ticket
Hypothesis" (Frankle & Carbin 2019, arXiv:1803.03635): train the network to the
end, remove the fraction ``prune_fraction`` (the papers' and open_lth's 20 %)
of the surviving conv and linear weights with the smallest magnitude, globally,
rewind the survivors to their values at an early step k, and train again from
step k; repeat until the target. The number of rounds follows from the target:
the smallest R with (1 - p)^R <= 1 - S (R = 4 at 50 %, 11 at 90 %, 18 at 98 %);
round r < R reaches sparsity 1 - (1 - p)^r and the last round lands on S exactly.

The schedule is shortened where the papers' is not affordable here: in the
papers every round retrains the full schedule from step k (R + 1 full trainings).
Here the first dense training and the last round (whose weights are the result)
train the full schedule, and the R - 1 intermediate rounds, which only choose
the mask, share ``intermediate_runs`` full trainings' worth of steps: each
trains (T - k) * intermediate_runs / (R - 1) steps from k with the task's
learning-rate schedule compressed to that length. So a job costs about
intermediate_runs + 2 trainings at every target (the FLOP count charges every
step); ``intermediate_runs: null`` restores the papers' full-length rounds.
"""

import contextlib
import math
from dataclasses import dataclass

import torch

from sparsebench.families.sparse_training import SparseTrainingMethod
from sparsebench.method import Paper
from sparsebench.training.distribution import total_keep
from sparsebench.training.masking import global_topk
from sparsebench.training.schedule import StepPlan


def rounds_for(sparsity: float, prune_fraction: float) -> int:
    """The smallest R >= 1 with (1 - prune_fraction)^R <= 1 - sparsity."""
    if sparsity <= 0:
        return 1
    return max(1, math.ceil(math.log(1.0 - sparsity) / math.log(1.0 - prune_fraction) - 1e-9))


def round_sparsities(sparsity: float, prune_fraction: float) -> list[float]:
    """Sparsity after each round: 1 - (1 - p)^r, the last one exactly the target."""
    n = rounds_for(sparsity, prune_fraction)
    return [1.0 - (1.0 - prune_fraction) ** r for r in range(1, n)] + [sparsity]


@contextlib.contextmanager
def run_length(trainer, total_steps: int):
    """Train to ``total_steps`` (learning-rate schedule included) instead of the recipe's length."""
    full = trainer.total_steps
    trainer.total_steps = total_steps
    try:
        yield
    finally:
        trainer.total_steps = full


class IMP(SparseTrainingMethod):
    name = "imp"
    display_name = "IMP"
    paper = Paper("Linear Mode Connectivity and the Lottery Ticket Hypothesis",
                  "Frankle, Dziugaite, Roy, Carbin", 2020, arxiv="1912.05671")

    @dataclass
    class Params:
        prune_fraction: float = 0.2  # of the survivors, per round (the papers: 0.2)
        rewind_fraction: float = 0.05  # rewind point k as a fraction of training
        # full trainings shared by the intermediate rounds (the papers: one per round, null)
        intermediate_runs: float | None = 2.0

        def check(self):
            if not 0 < self.prune_fraction < 1 or not 0 <= self.rewind_fraction < 1:
                raise ValueError(f"prune_fraction={self.prune_fraction} in (0, 1) and rewind_fraction="
                                 f"{self.rewind_fraction} in [0, 1) are required")
            if self.intermediate_runs is not None and self.intermediate_runs <= 0:
                raise ValueError(f"intermediate_runs={self.intermediate_runs} must be > 0 (or null: full rounds)")

    def __init__(self, params=None):
        super().__init__(params)
        self.current_sparsity = 0.0

    def schedule(self, trainer, step):
        return StepPlan(self.current_sparsity)

    def round_steps(self, trainer, rounds: int, k: int) -> int:
        """Steps from k that an intermediate round trains."""
        full = trainer.total_steps - k
        if self.params.intermediate_runs is None or rounds <= 1:
            return full
        return min(full, max(1, round(full * self.params.intermediate_runs / (rounds - 1))))

    def train(self, trainer):
        p = self.params
        targets = round_sparsities(trainer.target.sparsity, p.prune_fraction)
        trainer.set_masks({k: torch.ones_like(m.weight, dtype=torch.bool) for k, m in trainer.layers.items()})
        k = round(p.rewind_fraction * trainer.total_steps)
        rewind: dict = {} if k > 0 else trainer.snapshot()

        def keep_rewind_point(tr):
            if tr.step + 1 == k:
                rewind.update(tr.snapshot())

        self.current_sparsity = 0.0
        trainer.fit(on_step=keep_rewind_point)
        short = self.round_steps(trainer, len(targets), k)
        for r, sparsity in enumerate(targets, start=1):
            self.current_sparsity = sparsity
            scores = {n: torch.where(trainer.mask(n), trainer.weight(n).detach().abs(), torch.tensor(-math.inf))
                      for n in trainer.layers}
            masks = global_topk(scores, total_keep(trainer.numels, sparsity))
            trainer.restore(rewind)
            trainer.set_masks(masks)
            last = r == len(targets)
            end = trainer.total_steps if last else k + short
            trainer.log(f"IMP round {r}/{len(targets)}: sparsity {sparsity:.4f}, rewound to step {k}, "
                        f"trains to step {end}")
            with run_length(trainer, end):
                trainer.fit(start_step=k)
