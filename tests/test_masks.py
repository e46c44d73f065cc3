"""The shared mask mechanism and the pattern guarantees."""

import pytest
import torch
from torch import nn

from sparsebench.masks import (
    SparsityMismatch,
    apply_mask,
    check_target,
    get_mask,
    layerwise_sparsity,
    mask_from_scores,
    nm_violations,
)
from sparsebench.targets import Pattern, Target


@pytest.mark.parametrize("s", [0.1, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("per", ["layer", "row"])
def test_unstructured_mask_has_exact_sparsity(s, per):
    scores = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    keep = mask_from_scores(scores, Target(s), per=per)
    if per == "layer":
        assert int((~keep).sum()) == round(s * scores.numel())
    else:
        assert ((~keep).sum(1) == round(s * 96)).all()


def test_unstructured_mask_keeps_the_largest_scores():
    scores = torch.arange(12.0).reshape(3, 4)
    keep = mask_from_scores(scores, Target(0.5), per="layer")
    assert keep.flatten().tolist() == [False] * 6 + [True] * 6


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_mask_keeps_n_in_every_group_of_m_along_inputs(n, m):
    scores = torch.randn(32, 64)
    keep = mask_from_scores(scores, Target(1 - n / m, Pattern("n:m", n=n, m=m)))
    groups = keep.reshape(32, 64 // m, m).sum(-1)
    assert (groups == n).all()
    assert nm_violations(keep, n, m) == 0


def test_nm_mask_picks_the_top_n_of_each_group():
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0, 0.0, 9.0, 8.0, 7.0]])
    keep = mask_from_scores(scores, Target(0.5, Pattern("n:m", n=2, m=4)))
    assert keep.tolist() == [[True, False, True, False, False, True, True, False]]


def test_nm_needs_divisible_input_dimension():
    with pytest.raises(ValueError, match="divisible"):
        mask_from_scores(torch.randn(4, 6), Target(0.5, Pattern("n:m", n=2, m=4)))


def test_parametrized_forward_sees_masked_weight_and_optimizer_keeps_it_masked():
    lin = nn.Linear(8, 4, bias=False)
    mask = torch.rand(4, 8) > 0.5
    apply_mask(lin, mask)
    x = torch.randn(3, 8)
    dense_w = lin.parametrizations.weight.original.detach()
    assert torch.allclose(lin(x), x @ (dense_w * mask).T)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    lin(x).sum().backward()
    opt.step()
    assert (lin.weight[~mask] == 0).all()
    assert torch.equal(get_mask(lin), mask)


def test_check_target_fails_loudly_when_a_layer_misses():
    layers = {"a": nn.Linear(16, 8), "b": nn.Linear(16, 8)}
    apply_mask(layers["a"], mask_from_scores(torch.randn(8, 16), Target(0.5)))
    apply_mask(layers["b"], mask_from_scores(torch.randn(8, 16), Target(0.25)))
    with pytest.raises(SparsityMismatch, match="b: measured sparsity 0.25"):
        check_target(layers, Target(0.5))
    assert layerwise_sparsity(layers) == {"a": 0.5, "b": 0.25}


def test_check_target_rejects_invalid_nm_groups():
    lin = nn.Linear(8, 2)
    keep = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    apply_mask(lin, keep)
    with pytest.raises(SparsityMismatch, match="1 groups keep more than 2 of 4"):
        check_target({"lin": lin}, Target(0.5, Pattern("n:m", n=2, m=4)))


def test_check_target_overall_only_accepts_uneven_layers_that_meet_the_total():
    layers = {"a": nn.Linear(16, 8), "b": nn.Linear(16, 8)}
    apply_mask(layers["a"], mask_from_scores(torch.randn(8, 16), Target(0.75)))
    apply_mask(layers["b"], mask_from_scores(torch.randn(8, 16), Target(0.25)))
    check_target(layers, Target(0.5), per_layer=False)  # total is exactly 50 %
    with pytest.raises(SparsityMismatch, match="overall"):
        check_target(layers, Target(0.6), per_layer=False)
