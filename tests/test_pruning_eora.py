"""EoRA compensation: the layer-wise activation-weighted error it guarantees, and the option on any pruner."""

import copy

import pytest
import torch

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.masks import mask_from_scores
from sparsebench.params import params_dict
from sparsebench.pruning.eora import eora_factors, plain_svd_factors, weighted_error
from sparsebench.pruning.pipeline import prune_sequentially
from sparsebench.pruning.step import prune_model
from sparsebench.targets import Target

from test_pruning_calibration import context, tiny_llama


def pruned_layer(out=24, inp=40, tokens=400, seed=0):
    """A weight, its 50 % magnitude-pruned copy, and inputs whose covariance is far from isotropic
    (a few outlier features, as in LLM activations)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, inp, generator=g)
    X = torch.randn(tokens, inp, generator=g) * torch.logspace(1, -1, inp)
    X[:, :3] *= 8.0
    Wc = W * mask_from_scores(W.abs(), Target(0.5))
    return W, Wc, X


def test_eora_weighted_error_at_rank_zero_is_the_pruned_error_and_falls_with_rank():
    W, Wc, X = pruned_layer()
    gram = X.T @ X
    delta = W - Wc
    pruned = weighted_error(delta, gram)
    assert pruned == pytest.approx(float(((X @ delta.T) ** 2).sum()), rel=1e-6)
    errors = []
    for rank in (0, 1, 2, 4, 8, 16, 24):
        lr = eora_factors(delta, gram, rank)
        assert lr.A.shape == (rank, W.shape[1]) and lr.B.shape == (W.shape[0], rank)
        measured = weighted_error(delta - lr.B.double() @ lr.A.double(), gram)
        assert measured == pytest.approx(lr.error_after, rel=1e-4, abs=1e-6 * pruned)
        errors.append(measured)
    assert errors[0] == pytest.approx(pruned, rel=1e-9)
    assert all(b < a for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-8 * pruned  # full rank (min(out, in) = 24) recovers the dense layer on these inputs


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_plain_svd_of_the_error_leaves_more_activation_weighted_error_than_eora(rank):
    W, Wc, X = pruned_layer(seed=rank)
    gram = X.T @ X
    eora = eora_factors(W - Wc, gram, rank)
    plain = plain_svd_factors(W - Wc, gram, rank)
    assert eora.parameters == plain.parameters == rank * (W.shape[0] + W.shape[1])
    assert eora.error_after < 0.9 * plain.error_after


def test_eora_is_the_best_rank_r_fix_in_the_weighted_norm():
    """No random rank-r correction beats it (Eckart-Young in the eigenspace)."""
    W, Wc, X = pruned_layer(seed=3)
    gram, delta = X.T @ X, W - Wc
    best = eora_factors(delta, gram, 4).error_after
    g = torch.Generator().manual_seed(1)
    lr = eora_factors(delta, gram, 4)
    for _ in range(20):
        B = lr.B.double() + 0.05 * torch.randn(lr.B.shape, generator=g, dtype=torch.float64)
        A = lr.A.double() + 0.05 * torch.randn(lr.A.shape, generator=g, dtype=torch.float64)
        assert weighted_error(delta - B @ A, gram) >= best * (1 - 1e-6)


def test_a_zero_input_feature_does_not_break_the_fit():
    W, Wc, X = pruned_layer()
    X[:, 5] = 0.0
    lr = eora_factors(W - Wc, X.T @ X, 8)
    assert torch.isfinite(lr.A).all() and torch.isfinite(lr.B).all()
    assert lr.error_after < lr.error_before


def wanda(eora_rank=0):
    entry = registry.method("wanda")
    return entry.cls.build({"eora_rank": eora_rank} if eora_rank else {}, "methods.wanda")


def test_eora_rank_zero_stays_out_of_run_ids_and_a_rank_enters_them():
    assert params_dict(wanda().params) == {}
    assert params_dict(wanda(16).params) == {"eora_rank": 16}
    sgpt = registry.method("sparsegpt").cls
    assert "eora_rank" not in params_dict(sgpt.Params())


@pytest.mark.parametrize("name,why", [("flap", "removes whole rows and columns"),
                                      ("magnitude-global", "prunes all layers together")])
def test_eora_on_a_method_it_cannot_compensate_is_a_config_error(name, why):
    with pytest.raises(ConfigError, match=f"methods.{name}: eora_rank=8: .*{why}"):
        registry.method(name).cls.build({"eora_rank": 8}, f"methods.{name}")
    with pytest.raises(ConfigError, match="eora_rank=-1 must be an integer >= 0"):
        registry.method("wanda").cls.build({"eora_rank": -1}, "methods.wanda")


def outputs(model, ids):
    with torch.no_grad():
        return model(ids, use_cache=False).logits


@pytest.mark.parametrize("name", ["wanda", "magnitude"])
def test_compensated_model_keeps_its_masks_sparsity_and_is_closer_to_dense(name):
    dense = tiny_llama()
    ids = torch.randint(0, 96, (4, 16), generator=torch.Generator().manual_seed(0))  # the calibration windows
    ref = outputs(dense, ids)
    err = {}
    for rank in (0, 8, 32):
        model = copy.deepcopy(dense)
        method = registry.method(name).cls.build({"eora_rank": rank} if rank else {}, f"methods.{name}")
        ctx = context(method, Target(0.5))
        layers = ctx.task.prunable_layers(model)
        pruned = prune_model(ctx, model, layers)
        assert pruned["sparsity"]["measured"] == pytest.approx(0.5, abs=1e-3)
        err[rank] = float((outputs(model, ids) - ref).square().mean())
        if rank:
            rec = pruned["sparsity"]["eora"]
            expected = sum(min(rank, *m.weight.shape) * sum(m.weight.shape) for m in layers.values())
            assert rec["parameters_added"] == expected
            assert 0 <= rec["error_ratio_mean"] < 1
            assert all(hasattr(m, "eora_A") for m in layers.values())
        else:
            assert "eora" not in pruned["sparsity"]
    assert err[32] < err[8] < err[0]


def test_sequential_pipeline_without_a_rank_attaches_nothing():
    model = tiny_llama()
    ctx = context(wanda(), Target(0.5))
    prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
    assert not any(hasattr(m, "eora_A") for m in model.modules())
