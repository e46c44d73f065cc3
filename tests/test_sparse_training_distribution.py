"""ERK and uniform layer budgets (RigL paper, arXiv:1911.11134, Sec. 3)."""

import math

import pytest

from sparsebench.training.distribution import (erk_densities, layer_budget, stem_layers, total_keep,
                                               uniform_densities)
from sparsebench.training.dst import momentum_regrowth

SHAPES = {
    "stem": (8, 1, 3, 3),
    "conv_a": (16, 8, 3, 3),
    "conv_b": (32, 16, 3, 3),
    "conv_c": (64, 32, 3, 3),
    "fc": (10, 64),
}


def numels():
    return {k: math.prod(s) for k, s in SHAPES.items()}


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95, 0.98])
@pytest.mark.parametrize("kind", ["erk", "uniform"])
def test_layer_budget_sums_exactly_to_the_global_target(kind, sparsity):
    keep = layer_budget(SHAPES, sparsity, kind)
    assert sum(keep.values()) == total_keep(numels(), sparsity)
    assert all(0 <= keep[k] <= numels()[k] for k in SHAPES)


def test_erk_density_of_sparse_layers_is_proportional_to_sum_over_product_of_dims():
    dens = erk_densities(SHAPES, 0.95)
    sparse = [k for k, d in dens.items() if d < 1.0]
    assert len(sparse) >= 3
    eps = {k: dens[k] / (sum(SHAPES[k]) / math.prod(SHAPES[k])) for k in sparse}
    ref = next(iter(eps.values()))
    assert all(math.isclose(v, ref, rel_tol=1e-12) for v in eps.values())


def test_erk_makes_layers_that_would_exceed_density_one_dense_and_redistributes_their_budget():
    dens = erk_densities(SHAPES, 0.5)
    raw = {k: sum(s) / math.prod(s) for k, s in SHAPES.items()}
    assert dens["stem"] == 1.0  # the raw ERK density of the 72-weight stem is far above 1 at 50 %
    sparse = [k for k in SHAPES if dens[k] < 1.0]
    eps = dens[sparse[0]] / raw[sparse[0]]
    assert eps * raw["stem"] > 1.0
    kept = sum(dens[k] * numels()[k] for k in SHAPES)
    assert math.isclose(kept, total_keep(numels(), 0.5), rel_tol=1e-12)
    assert all(d <= 1.0 for d in dens.values())


def test_erk_gives_smaller_layers_higher_density():
    dens = erk_densities(SHAPES, 0.9)
    assert dens["conv_a"] > dens["conv_b"] > dens["conv_c"]


def test_uniform_keeps_the_first_layer_dense_and_the_rest_at_one_sparsity():
    dens = uniform_densities(SHAPES, 0.9)
    assert dens["stem"] == 1.0
    rest = {dens[k] for k in SHAPES if k != "stem"}
    assert len(rest) == 1 and rest.pop() < 0.1


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95, 0.98, 0.99])
@pytest.mark.parametrize("build", ["digits", "cifar_resnet18"])
def test_uniform_budget_never_leaves_a_stem_layer_with_fewer_than_its_weights(build, sparsity):
    """The reference (RigL's code) keeps its stem convolution unmasked; timm's deep stem has three."""
    from sparsebench.vision.models import cifar_resnet18, conv_and_linear_layers, small_resnet

    model = small_resnet(10, 1, (8, 16, 32, 64), (1, 1, 1, 1)) if build == "digits" else cifar_resnet18(10)
    layers = conv_and_linear_layers(model)
    stem = stem_layers(model, layers)
    assert stem == (("conv1.0", "conv1.3", "conv1.6") if build == "digits" else ("conv1",))
    shapes = {k: tuple(m.weight.shape) for k, m in layers.items()}
    keep = layer_budget(shapes, sparsity, "uniform", dense=stem)
    assert all(keep[k] == layers[k].weight.numel() for k in stem)
    assert sum(keep.values()) == total_keep({k: m.weight.numel() for k, m in layers.items()}, sparsity)
    others = [keep[k] / layers[k].weight.numel() for k in layers if k not in stem]
    assert max(others) - min(others) < 0.01  # every other layer at one sparsity (up to rounding)


def test_a_budget_below_the_stem_size_is_refused_naming_the_sparsity_and_layers():
    with pytest.raises(ValueError, match=r"sparsity=0.999.*\['stem', 'conv_a'\]"):
        layer_budget(SHAPES, 0.999, "uniform", dense=("stem", "conv_a"))


def test_the_stem_of_a_model_without_timm_metadata_is_its_first_layer():
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    assert stem_layers(model, ["0", "1"]) == ("0",)


def test_unknown_distribution_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="allowed: 'erk', 'uniform'"):
        layer_budget(SHAPES, 0.9, "gaussian")


def test_redistribution_fills_layers_to_capacity_and_passes_the_excess_on():
    removed = {"a": 40, "b": 30, "c": 30}
    out = momentum_regrowth(removed, {"a": 10.0, "b": 1.0, "c": 1.0}, {"a": 30, "b": 200, "c": 200})
    assert sum(out.values()) == 100
    assert out["a"] == 29 and out["b"] + out["c"] == 71 and abs(out["b"] - out["c"]) <= 1


def test_redistribution_gives_every_layer_with_momentum_at_least_one_weight():
    """The authors' ceil(share * total): a layer with a tiny share is not drained to zero."""
    removed = {"big": 500, "tiny": 2}
    out = momentum_regrowth(removed, {"big": 1.0, "tiny": 1e-6}, {"big": 10_000, "tiny": 72})
    assert out["tiny"] >= 1 and sum(out.values()) == 502
