"""Each sparse-training method's schedule is the paper's, or a documented parameter beside it."""

import math

import pytest
import torch

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
    tr = make_trainer("imp", 0.5)  # 4 rounds at 50 %
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


def count_optimizer_steps(trainer) -> list[int]:
    calls = []
    make = trainer.make_optimizer

    def counted():
        opt = make()
        step = opt.step
        opt.step = lambda *a, **k: (calls.append(trainer.step), step(*a, **k))[1]
        return opt

    trainer.make_optimizer = counted
    return calls


def test_rigl_skips_the_optimizer_step_on_mask_update_steps_and_set_does_not():
    for name, skips in (("rigl", True), ("set", False)):
        tr = make_trainer(name, 0.9, method_params={"min_intervals": 3})
        calls = count_optimizer_steps(tr)
        tr.method.train(tr)
        updates = [s for s in range(tr.total_steps) if tr.method.schedule(tr, s).update]
        assert len(updates) >= 2
        expected = [s for s in range(tr.total_steps) if not (skips and s in updates)]
        assert calls == expected, name


@pytest.mark.parametrize("epochs,interval", [(20, 50), (2, 5), (200, 100)])
def test_dst_interval_is_the_papers_100_steps_capped_at_six_intervals_before_t_end(epochs, interval):
    tr = make_trainer("rigl", 0.9, epochs=epochs, batch_size=64)  # 20 steps per epoch
    assert tr.total_steps == 20 * epochs
    assert tr.method.update_interval(tr) == interval


def test_sparse_momentum_regrown_weights_start_at_zero_with_the_momentum_that_selected_them():
    tr = make_trainer("sparse-momentum", 0.9, epochs=2)
    tr.set_masks(tr.method.initial_masks(tr))
    method, after = tr.method, tr.method.after_step
    grown_at = []

    def checked(t, plan):
        old = {k: m.clone() for k, m in t.masks().items()}
        after(t, plan)
        if not plan.update:
            return
        for name, mask in t.masks().items():
            grown = mask & ~old[name]
            assert torch.all(t.weight(name)[grown] == 0), name
            assert torch.equal(t.momentum(name)[grown], method.momentum[name][grown]), name
            if grown.any():
                grown_at.append(float(t.momentum(name)[grown].abs().sum()))

    method.after_step = checked
    tr.fit()
    assert grown_at and sum(grown_at) > 0  # the epoch-end update regrew weights, with non-zero momentum


def test_grasp_scores_ten_images_of_every_class_in_two_halves():
    tr = make_trainer("grasp", 0.9)
    halves = tr.method.scoring_data(tr)
    assert len(halves) == 2 and [len(y) for _, y in halves] == [50, 50]
    ys = torch.cat([y for _, y in halves])
    assert torch.bincount(ys, minlength=10).tolist() == [10] * 10
    order = tr.epoch_order(0)
    first3 = order[tr.data.train_y[order] == 3][:10]
    assert torch.equal(halves[0][0][30:40], tr.data.train_x[first3])  # the first ones of the training order


def test_grasp_refuses_more_samples_per_class_than_a_class_has():
    tr = make_trainer("grasp", 0.9, method_params={"samples_per_class": 10_000})
    with pytest.raises(ValueError, match="samples_per_class=10000 but class 0 has only"):
        tr.method.scoring_data(tr)
