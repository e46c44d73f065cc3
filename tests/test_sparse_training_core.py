"""The sparse-training loop: masks enforced, budgets kept, dense gradients, FLOPs, determinism."""

import torch
from torch.nn.utils import parametrize

from sparse_training_helpers import make_trainer
from sparsebench.masks import get_mask
from sparsebench.training.distribution import total_keep
from sparsebench.training.schedule import StepPlan, cubic_sparsity


def kept_counts(trainer):
    return {k: int(m.sum()) for k, m in trainer.masks().items()}


def test_static_random_erk_masked_weights_and_their_momentum_are_zero_after_training():
    tr = make_trainer("static-random-erk", 0.9)
    tr.method.train(tr)
    for name, mask in tr.masks().items():
        assert torch.all(tr.weight(name)[~mask] == 0)
    assert all(c["sparsity"] == tr.curve[0]["sparsity"] for c in tr.curve)
    assert abs(tr.curve[-1]["sparsity"] - 0.9) < 1e-4


def test_measured_sparsity_equals_target_after_every_rigl_and_set_update():
    for name in ("rigl", "set"):
        tr = make_trainer(name, 0.9, method_params={"delta_t": 3})
        initial = tr.method.initial_masks(tr)
        tr.set_masks(initial)
        start = kept_counts(tr)
        before = {k: m.clone() for k, m in tr.masks().items()}
        seen = []

        def after(t):
            if tr.method.schedule(t, t.step).update:
                assert kept_counts(t) == start  # every layer: same count after prune and regrow
                assert sum(start.values()) == total_keep(t.numels, 0.9)
                seen.append(t.step)

        tr.fit(on_step=after)
        assert len(seen) >= 3, name
        changed = sum(int((before[k] != m).sum()) for k, m in tr.masks().items())
        assert changed > 0, f"{name} never changed its masks"


def test_rigl_grown_connections_start_at_zero_and_are_where_the_dense_gradient_is_largest():
    tr = make_trainer("rigl", 0.9, method_params={"delta_t": 1, "alpha": 0.3})
    tr.set_masks(tr.method.initial_masks(tr))
    x, y = tr.batch(0)
    with parametrize.cached():
        eff = {k: m.weight for k, m in tr.layers.items()}
        for w in eff.values():
            w.retain_grad()
        tr.loss(tr.model(x), y).backward()
    tr.dense_grads = {k: w.grad.clone() for k, w in eff.items()}
    old = {k: m.clone() for k, m in tr.masks().items()}
    tr.step = 1
    tr.method.after_step(tr, StepPlan(0.9, update=True, dense_grad=True))
    for name, before in old.items():
        new = get_mask(tr.layers[name])
        grown = new & ~before
        assert int(new.sum()) == int(before.sum()), name
        if int(grown.sum()) == 0:
            continue
        assert torch.all(tr.weight(name)[grown] == 0), name
        # each grown position has a |dense gradient| at least as large as any position left inactive
        g = tr.dense_grads[name].abs()
        assert g[grown].min() >= g[~new].max(), name
    assert sum(int((get_mask(tr.layers[k]) & ~m).sum()) for k, m in old.items()) > 0


def test_dense_gradient_is_the_gradient_of_the_effective_weight_at_masked_positions_too():
    tr = make_trainer("rigl", 0.9)
    tr.set_masks(tr.method.initial_masks(tr))
    name = "layer2.0.conv1"
    x, y = tr.batch(0)
    with parametrize.cached():
        eff = tr.layers[name].weight
        eff.retain_grad()
        tr.loss(tr.model(x), y).backward()
    dense = eff.grad.clone()
    mask = tr.mask(name)
    # the underlying weight's gradient is the dense one times the mask ...
    assert torch.allclose(tr.weight(name).grad, dense * mask)
    # ... and the dense gradient is non-zero where the mask is zero (what RigL grows by)
    assert dense[~mask].abs().sum() > 0


def test_gmp_follows_the_cubic_schedule_and_ends_at_the_target():
    assert cubic_sparsity(0, 0.0, 0.9, 10, 5, 4) == 0.0
    assert cubic_sparsity(10, 0.0, 0.9, 10, 5, 4) == 0.0
    assert abs(cubic_sparsity(14, 0.0, 0.9, 10, 5, 4) - (0.9 - 0.9 * 0.8 ** 3)) < 1e-12
    assert cubic_sparsity(30, 0.0, 0.9, 10, 5, 4) == 0.9
    assert cubic_sparsity(99, 0.0, 0.9, 10, 5, 4) == 0.9
    tr = make_trainer("gmp", 0.8)
    tr.method.train(tr)
    sparsities = [c["sparsity"] for c in tr.curve]
    assert sparsities == sorted(sparsities) and abs(sparsities[-1] - 0.8) < 1e-4


def test_sparse_momentum_keeps_the_global_count_while_moving_weights_between_layers():
    tr = make_trainer("sparse-momentum", 0.9, epochs=3)
    tr.set_masks(tr.method.initial_masks(tr))
    start = kept_counts(tr)
    tr.fit()
    end = kept_counts(tr)
    assert sum(end.values()) == sum(start.values()) == total_keep(tr.numels, 0.9)
    assert end != start  # redistribution moved some budget


def test_sr_ste_ends_with_exactly_two_of_every_four_input_channels():
    tr = make_trainer("sr-ste", pattern="2:4")
    tr.method.train(tr)
    masks = tr.masks()
    assert "layer1.0.conv1" in masks and "fc" in masks and "conv1.0" not in masks  # 1-channel stem stays dense
    for name, mask in masks.items():
        w = mask.permute(0, 2, 3, 1) if mask.dim() == 4 else mask
        groups = w.reshape(w.shape[0], -1, 4).sum(-1)
        assert torch.all(groups == 2), name
    # the dense weights kept training under the pruned positions (the straight-through estimator)
    assert any(tr.weight(k)[~m].abs().sum() > 0 for k, m in masks.items())


def test_imp_charges_every_round_and_ends_at_the_target():
    tr = make_trainer("imp", 0.5)
    tr.method.train(tr)
    assert abs(tr.curve[-1]["sparsity"] - 0.5) < 1e-4
    dense_one = tr.flops.dense_training(len(tr.data.train_y) * tr.recipe.epochs)
    assert tr.flops.total > 2 * dense_one  # a dense round, the last full round and the shortened ones


def test_rigl_costs_more_flops_than_static_at_the_same_sparsity_and_both_less_than_dense():
    totals = {}
    for name in ("static-random-erk", "rigl", "dense-train"):
        tr = make_trainer(name, 0.0 if name == "dense-train" else 0.9)
        tr.method.train(tr)
        totals[name] = tr.flops.total / tr.flops.dense_training(len(tr.data.train_y) * tr.recipe.epochs)
    assert abs(totals["dense-train"] - 1.0) < 1e-9
    assert totals["static-random-erk"] < totals["rigl"] < 1.0


def test_snip_grasp_and_synflow_meet_the_global_budget_exactly():
    # (SynFlow may remove a whole residual branch of a ResNet: the shortcut keeps the network connected.)
    for name in ("snip", "grasp", "synflow"):
        tr = make_trainer(name, 0.98, method_params={"iterations": 20} if name == "synflow" else None)
        tr.set_masks(tr.method.initial_masks(tr))
        assert sum(kept_counts(tr).values()) == total_keep(tr.numels, 0.98)
        assert len(tr.masks()) == len(tr.layers)


def test_same_seed_gives_bit_identical_accuracy_and_a_different_seed_a_different_run(tmp_path):
    from sparse_training_helpers import TINY, make_job_result

    a = make_job_result("rigl", 0.9, tmp_path / "a", seed=3, **TINY)
    b = make_job_result("rigl", 0.9, tmp_path / "b", seed=3, **TINY)
    c = make_job_result("rigl", 0.9, tmp_path / "c", seed=4, **TINY)
    assert a["metrics"]["top1"] == b["metrics"]["top1"]
    assert a["extra"]["curve"] == b["extra"]["curve"]  # every epoch's loss and accuracy, bit for bit
    assert a["extra"]["curve"] != c["extra"]["curve"]
    assert a["sparsity"]["layers"] == b["sparsity"]["layers"]
