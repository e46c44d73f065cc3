"""SparseGPT, Wanda, DSnoT and global magnitude on single linear layers with correlated inputs."""

import pytest
import torch

from sparsebench import registry
from sparsebench.pruning.calibration import LayerInputs
from sparsebench.families.pruning import LayerToPrune
from sparsebench.masks import nm_violations
from sparsebench.targets import Target

HALF = Target(0.5)


def correlated_inputs(tokens=4096, cols=128, seed=0):
    """Rows of X with correlated features, uneven scales and non-zero means (as LLM activations)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(tokens, cols, generator=g)
    mix = torch.eye(cols) + 0.6 * torch.randn(cols, cols, generator=g) / cols**0.5
    scale = torch.exp(torch.randn(cols, generator=g))
    return (z @ mix) * scale + 0.3 * torch.randn(cols, generator=g)


def stats_of(x, windows=8):
    s = LayerInputs(x.shape[1])
    s.add(x.reshape(windows, -1, x.shape[1]))
    return s


def method(name, **params):
    return registry.method(name).cls.build(params, name)


def prune(name, W, stats, target, **params):
    """(keep mask, weight after pruning) for one layer; the input weight is left untouched."""
    w = W.clone()
    keep = method(name, **params).prune_layer(LayerToPrune("layer", w, torch.Generator().manual_seed(0), stats), target)
    return keep, w * keep


def output_error(W, W_new, x):
    return torch.linalg.norm(x @ W.T - x @ W_new.T).item()


@pytest.fixture(scope="module")
def layer():
    g = torch.Generator().manual_seed(1)
    x = correlated_inputs()
    W = torch.randn(96, x.shape[1], generator=g)
    return W, x, stats_of(x)


def test_reconstruction_error_is_sparsegpt_below_wanda_below_magnitude_at_50(layer):
    W, x, stats = layer
    err = {m: output_error(W, prune(m, W, stats, HALF)[1], x) for m in ("sparsegpt", "wanda", "magnitude")}
    assert err["sparsegpt"] < err["wanda"] < err["magnitude"], err


def test_sparsegpt_at_sparsity_zero_returns_the_weights_unchanged(layer):
    W, _, stats = layer
    keep, W_new = prune("sparsegpt", W, stats, Target(0.0))
    assert keep.all()
    torch.testing.assert_close(W_new, W, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["sparsegpt", "wanda", "dsnot", "magnitude"])
@pytest.mark.parametrize("sparsity", [0.5, 0.7])
def test_unstructured_mask_has_the_exact_layer_sparsity(layer, name, sparsity):
    W, _, stats = layer
    keep, W_new = prune(name, W, stats, Target(sparsity))
    if name in ("wanda", "dsnot"):  # compared per output row: the same count in every row
        assert ((~keep).sum(1) == round(sparsity * W.shape[1])).all()
    else:
        assert int((~keep).sum()) == round(sparsity * W.numel())
    assert (W_new[~keep] == 0).all()


@pytest.mark.parametrize("name", ["wanda", "dsnot"])
def test_row_wise_methods_prune_the_same_count_in_every_row(layer, name):
    W, _, stats = layer
    keep, _ = prune(name, W, stats, HALF, **({"skip": "none"} if name == "dsnot" else {}))
    assert ((~keep).sum(1) == W.shape[1] // 2).all()


@pytest.mark.parametrize("name", ["sparsegpt", "wanda", "dsnot"])
@pytest.mark.parametrize("nm", ["2:4", "4:8"])
def test_n_m_mask_keeps_exactly_n_in_every_group_of_m_along_the_input_dim(layer, name, nm):
    W, _, stats = layer
    target = Target.from_config({"pattern": nm})
    n, m = target.pattern.n, target.pattern.m
    keep, W_new = prune(name, W, stats, target, **({"skip": "none"} if name == "dsnot" else {}))
    assert nm_violations(keep, n, m) == 0
    assert (keep.reshape(W.shape[0], -1, m).sum(-1) == n).all()
    assert ((W_new != 0).reshape(W.shape[0], -1, m).sum(-1) <= n).all()


def test_sparsegpt_2_4_mask_has_two_zeros_in_every_group_of_four(layer):
    W, _, stats = layer
    keep, W_new = prune("sparsegpt", W, stats, Target.from_config({"pattern": "2:4"}))
    assert ((W_new == 0).reshape(W.shape[0], -1, 4).sum(-1) >= 2).all()


def test_sparsegpt_2_4_beats_wanda_2_4_on_reconstruction(layer):
    W, x, stats = layer
    t = Target.from_config({"pattern": "2:4"})
    assert output_error(W, prune("sparsegpt", W, stats, t)[1], x) < output_error(W, prune("wanda", W, stats, t)[1], x)


@pytest.mark.parametrize("name", ["sparsegpt", "wanda", "dsnot"])
def test_same_data_gives_identical_masks(layer, name):
    W, x, _ = layer
    a, wa = prune(name, W, stats_of(x), Target(0.7))
    b, wb = prune(name, W, stats_of(x.clone()), Target(0.7))
    assert torch.equal(a, b) and torch.equal(wa, wb)


def test_wanda_score_is_weight_magnitude_times_input_norm(layer):
    W, x, stats = layer
    keep, _ = prune("wanda", W, stats, HALF)
    score = W.abs() * torch.linalg.norm(x, dim=0)
    kth = torch.sort(score, dim=1).values[:, W.shape[1] // 2 - 1 : W.shape[1] // 2 + 1]
    # every pruned score is at most every kept score of its row
    assert ((score * ~keep).amax(1) <= torch.where(keep, score, torch.inf).amin(1) + 1e-4).all()
    assert (kth[:, 0] <= kth[:, 1]).all()


def test_dsnot_reduces_the_expected_reconstruction_error_of_its_wanda_mask(layer):
    W, _, stats = layer
    wanda_keep, _ = prune("wanda", W, stats, HALF)
    dsnot_keep, _ = prune("dsnot", W, stats, HALF, skip="none")
    contribution = W * stats.window_sum_mean
    before = (contribution * ~wanda_keep).sum(1).abs()
    after = (contribution * ~dsnot_keep).sum(1).abs()
    assert not torch.equal(wanda_keep, dsnot_keep)
    assert after.mean() < 0.5 * before.mean()


def test_dsnot_skips_mlp_layers_by_default_as_the_authors_code(layer):
    W, _, stats = layer
    m = method("dsnot")
    keep = m.prune_layer(LayerToPrune("model.layers.0.mlp.up_proj", W.clone(), None, stats), HALF)
    assert torch.equal(keep, prune("wanda", W, stats, HALF)[0])


def test_global_magnitude_meets_the_overall_target_with_uneven_layers():
    g = torch.Generator().manual_seed(0)
    layers = {"a": torch.nn.Linear(64, 32), "b": torch.nn.Linear(64, 32)}
    with torch.no_grad():
        layers["a"].weight.copy_(torch.randn(32, 64, generator=g))
        layers["b"].weight.copy_(0.2 * torch.randn(32, 64, generator=g))
    masks = method("magnitude-global").prune(layers, HALF, g)
    zeros = {n: int((~m).sum()) for n, m in masks.items()}
    assert sum(zeros.values()) == 32 * 64
    assert zeros["b"] > zeros["a"]  # the layer of small weights loses more


def test_methods_that_calibrate_refuse_a_layer_without_inputs():
    W = torch.randn(8, 16)
    for name in ("sparsegpt", "wanda", "dsnot"):
        with pytest.raises(ValueError, match="calibration"):
            method(name).prune_layer(LayerToPrune("l", W.clone(), None, None), HALF)




def test_magnitude_global_job_passes_the_core_sparsity_check(tmp_path):
    from conftest import make_job
    from sparsebench.runner import run_job

    r = run_job(make_job("magnitude-global", {"sparsity": 0.5, "pattern": "unstructured"}), tmp_path / "g.json")
    layers = r["sparsity"]["layers"].values()
    assert abs(r["sparsity"]["measured"] - 0.5) < 1e-6
    assert max(layers) - min(layers) > 0.05  # one global threshold: uneven layers
