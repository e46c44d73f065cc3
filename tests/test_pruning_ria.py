"""RIA (Plug-and-Play, ICLR 2024): the score and the comparison groups of the authors' default run."""

import pytest
import torch

from sparsebench.masks import nm_violations
from sparsebench.targets import Target
from tests.test_pruning_methods import HALF, correlated_inputs, output_error, prune, stats_of


@pytest.fixture(scope="module")
def layer():
    g = torch.Generator().manual_seed(3)
    x = correlated_inputs(seed=3)
    W = torch.randn(96, x.shape[1], generator=g) * torch.exp(torch.randn(96, 1, generator=g))
    return W, x, stats_of(x)


def test_ria_prunes_the_lowest_relative_importance_times_sqrt_activation_norm_over_the_whole_layer(layer):
    W, x, stats = layer
    keep, _ = prune("ria", W, stats, HALF)
    a = W.abs()
    score = (a / a.sum(0, keepdim=True) + a / a.sum(1, keepdim=True)) * torch.linalg.norm(x, dim=0).sqrt()
    assert int((~keep).sum()) == W.numel() // 2
    assert score[~keep].max() <= score[keep].min() * (1 + 1e-5)


def test_ria_with_a_zero_ignores_activations(layer):
    W, x, stats = layer
    keep, _ = prune("ria", W, stats, HALF, a=0.0)
    keep_other, _ = prune("ria", W, stats_of(x * 10 ** torch.linspace(-2, 2, x.shape[1])), HALF, a=0.0)
    assert torch.equal(keep, keep_other)


@pytest.mark.parametrize("nm", ["2:4", "4:8"])
def test_ria_n_m_keeps_n_in_every_group_of_m(layer, nm):
    W, _, stats = layer
    t = Target.from_config({"pattern": nm})
    keep, _ = prune("ria", W, stats, t)
    assert nm_violations(keep, t.pattern.n, t.pattern.m) == 0


def test_ria_beats_magnitude_on_output_reconstruction_at_50(layer):
    W, x, stats = layer
    assert output_error(W, prune("ria", W, stats, HALF)[1], x) < output_error(W, prune("magnitude", W, stats, HALF)[1], x)


def test_ria_refuses_a_layer_without_calibration_inputs(layer):
    W, _, _ = layer
    with pytest.raises(ValueError, match="calibration"):
        prune("ria", W, None, HALF)
