"""The Lazy Neuron analysis: fractions of non-zero, positive and small MLP activations, per layer."""

import pytest
import torch
from torch import nn

from conftest import make_job
from sparsebench import registry
from sparsebench.activation.stats import OutputCounter
from sparsebench.report.figures.activation_sparsity import mlp_activation_stats, quality_vs_activation_sparsity
from sparsebench.results import summarize
from sparsebench.runner import run_job


class TinyMLP(nn.Module):
    """x -> act(x W): W is the identity, so the pre-activations are exactly the inputs."""

    def __init__(self, act: nn.Module, width: int = 10):
        super().__init__()
        self.gate = nn.Linear(width, width, bias=False)
        self.act_fn = act
        with torch.no_grad():
            self.gate.weight.copy_(torch.eye(width))

    def forward(self, x):
        return self.act_fn(self.gate(x))


def inputs_with_known_signs():
    """200 tokens x 10 channels: 30 % negative, 10 % exactly zero, 60 % positive; magnitudes 0.005 or 0.5."""
    g = torch.Generator().manual_seed(0)
    x = torch.full((200, 10), 0.5)
    x[:, :6] = torch.where(torch.rand(200, 6, generator=g) < 0.5, 0.005, 0.5)  # 6 positive channels
    x[:, 6] = 0.0
    x[:, 7:] = -0.5
    return x[torch.randperm(200, generator=g)]


def test_relu_mlp_nonzero_fraction_is_the_fraction_of_positive_pre_activations():
    model = TinyMLP(nn.ReLU())
    x = inputs_with_known_signs()
    small = float((x[:, :6] == 0.005).double().mean()) * 0.6
    with torch.no_grad(), OutputCounter(model, ["act_fn"], [0.01]) as counter:
        for chunk in x.split(64):
            model(chunk)
    f = counter.fractions()["act_fn"]
    assert f["entries"] == 2000
    assert f["nonzero"] == pytest.approx(0.6) and f["positive"] == pytest.approx(0.6)
    assert f["above"]["0.01"] == pytest.approx(0.6 - small)


def test_counter_keeps_per_window_fractions_whose_mean_is_the_fraction():
    model = TinyMLP(nn.ReLU())
    x = inputs_with_known_signs().reshape(4, 50, 10)  # 4 windows of 50 tokens
    with torch.no_grad(), OutputCounter(model, ["act_fn"], [0.01]) as counter:
        model(x[:2])
        model(x[2:])
    per_window = counter.row_fractions("positive")
    assert len(per_window) == 4 and sum(per_window) / 4 == pytest.approx(counter.fractions()["act_fn"]["positive"])
    assert per_window == pytest.approx([float((w > 0).double().mean()) for w in x])


def test_silu_mlp_has_no_exact_zeros_but_the_same_positive_fraction():
    model = TinyMLP(nn.SiLU())
    x = inputs_with_known_signs()
    small = float((x[:, :6] == 0.005).double().mean()) * 0.6
    with torch.no_grad(), OutputCounter(model, ["act_fn"], [0.01, 0.2]) as counter:
        model(x)
    f = counter.fractions()["act_fn"]
    assert f["nonzero"] == pytest.approx(0.9)  # only the exact-zero inputs give silu(0) = 0
    assert f["positive"] == pytest.approx(0.6)
    # silu(0.005) = 0.0025 is near zero; silu(-0.5) = -0.19 is not zero and counts by magnitude
    assert f["above"]["0.01"] == pytest.approx(0.6 - small + 0.3)
    assert f["above"]["0.2"] == pytest.approx(0.6 - small)  # silu(0.5) = 0.31 > 0.2 > 0.19


def test_counter_refuses_modules_that_do_not_exist():
    with pytest.raises(KeyError, match="no such modules"):
        with OutputCounter(TinyMLP(nn.ReLU()), ["mlp.act_fn"], [0.1]):
            pass


def test_mlp_activation_stats_job_leaves_the_model_dense_and_stores_per_layer_fractions(tmp_path):
    entry = registry.method("mlp-activation-stats")
    assert entry.cls.reference and entry.family == "activation_sparsity"
    stats = run_job(make_job("mlp-activation-stats", {"sparsity": 0.0, "pattern": "unstructured"}), tmp_path / "s.json")
    dense = run_job(make_job("dense", {"sparsity": 0.0, "pattern": "unstructured"}), tmp_path / "d.json")
    assert stats["metrics"]["perplexity"] == dense["metrics"]["perplexity"]
    layers = stats["extra"]["activation"]["method"]["layers"]
    assert [lay["block"] for lay in layers] == list(range(30))
    for lay in layers:
        assert lay["nonzero"] > 0.99  # SiLU: exact zeros are essentially absent
        assert 0.05 < lay["positive"] < 0.95
        assert lay["above"]["0.1"] <= lay["above"]["0.01"] <= lay["above"]["0.001"] <= lay["nonzero"]
    m = stats["metrics"]
    assert m["mlp_nonzero_fraction"] == pytest.approx(sum(lay["nonzero"] for lay in layers) / 30)
    assert set(m) >= {"mlp_positive_fraction", "mlp_above_0p01_fraction"}
    positive = stats["samples"]["mlp_positive_fraction"]  # per window, for the claims' intervals
    assert sum(positive["values"]) / len(positive["values"]) == pytest.approx(m["mlp_positive_fraction"], rel=1e-5)
    assert dense["samples"]["perplexity"]["statistic"] == "exp_mean"
    assert stats["sparsity"]["measured"] < 0.01  # nothing thresholded

    df = summarize([tmp_path / "s.json", tmp_path / "d.json"])
    df["primary_metric"] = "perplexity"
    assert list(mlp_activation_stats(df)) == ["mlp_activation_stats_lm-smollm2"]
    assert quality_vs_activation_sparsity(df) == {}  # an analysis at sparsity 0 is no point of the quality curve
