"""Each sparse-training method's schedule is the paper's, or a documented parameter beside it."""

import math

import pytest

from sparse_training_helpers import make_trainer
from methods.sparse_training.imp import round_sparsities, rounds_for


@pytest.mark.parametrize("sparsity,rounds", [(0.2, 1), (0.5, 4), (0.8, 8), (0.9, 11), (0.95, 14), (0.98, 18)])
def test_imp_round_count_follows_from_pruning_20_percent_of_the_survivors_per_round(sparsity, rounds):
    assert rounds_for(sparsity, 0.2) == rounds
    steps = round_sparsities(sparsity, 0.2)
    assert len(steps) == rounds and steps[-1] == sparsity
    survivors = [1.0] + [1.0 - s for s in steps]
    for before, after in zip(survivors[:-2], survivors[1:-1]):  # every round but the last removes 20 %
        assert math.isclose(after / before, 0.8, rel_tol=1e-12)
    assert 0.8 - 1e-12 <= survivors[-1] / survivors[-2] < 1.0  # the last removes at most 20 %


def test_imp_trains_every_round_to_its_sparsity_and_the_last_round_the_full_schedule():
    tr = make_trainer("imp", 0.5)  # 2 epochs of 9 steps; 4 rounds
    logs = []
    tr.log = logs.append
    tr.method.train(tr)
    rounds = [line for line in logs if line.startswith("IMP round")]
    assert len(rounds) == 4
    assert rounds[-1].endswith(f"trains to step {tr.total_steps}")
    k = round(0.05 * tr.total_steps)
    short = tr.method.round_steps(tr, 4, k)
    assert short == round((tr.total_steps - k) * 2.0 / 3)
    assert all(line.endswith(f"trains to step {k + short}") for line in rounds[:-1])
    samples = tr.samples_seen
    full, part = tr.total_steps, tr.total_steps - k
    assert samples == sum(min(128, len(tr.data.train_y) - 128 * (s % tr.steps_per_epoch)) for s in
                          list(range(full)) + 3 * list(range(k, k + short)) + list(range(k, full)))
    assert part > short
