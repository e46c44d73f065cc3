"""FLAP (structured width pruning) on a tiny grouped-query llama: a smaller dense model, same function."""

import copy

import pytest
import torch

from sparsebench import registry
from sparsebench.pruning.pipeline import dense_statistics
from sparsebench.masks import overall_sparsity
from sparsebench.pruning.step import prune_model
from sparsebench.pruning.structured import apply_as_masks, compress, parameter_count
from sparsebench.targets import Target
from test_pruning_calibration import context, tiny_llama

CHANNEL = "channel"


def flap(**params):
    return registry.method("flap").cls.build(params, "flap")


def target(s):
    return Target.from_config({"sparsity": s, "pattern": CHANNEL})


def planned(s=0.3, **params):
    model = tiny_llama()
    ctx = context(flap(**params), target(s))
    layers = ctx.task.prunable_layers(model)
    blocks, dense = dense_statistics(ctx, model, layers)
    return model, ctx, layers, ctx.method.plan_structure(model, blocks, dense, ctx.target)


def logits(model, ids):
    with torch.no_grad():
        return model(ids, use_cache=False).logits


def test_the_compressed_model_is_smaller_and_gives_the_logits_of_the_masked_model():
    model, ctx, layers, plan = planned(0.3)
    apply_as_masks(layers, plan)
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(1))
    masked = logits(model, ids)
    before = parameter_count(layers)
    compress(layers, plan)
    after = parameter_count(layers)
    assert after < before
    assert any(m.weight.shape[0] < 64 for n, m in layers.items() if n.endswith("gate_proj"))
    for name, mod in layers.items():
        assert mod.weight.shape == (mod.out_features, mod.in_features)
    torch.testing.assert_close(logits(model, ids), masked, rtol=1e-4, atol=1e-5)


def test_removed_units_are_whole_heads_groups_and_channels_consistently_across_producer_and_consumer():
    _, _, layers, plan = planned(0.4)
    for name in layers:
        if name.endswith("self_attn.o_proj"):
            prefix = name[: -len("o_proj")]
            assert torch.equal(plan.keep_cols[name], plan.keep_rows[prefix + "q_proj"])
            groups = plan.keep_rows[prefix + "k_proj"].reshape(2, 8)  # 2 kv heads of 8 dims
            assert (groups.all(1) | ~groups.any(1)).all()  # a kv head is kept or removed whole
        if name.endswith("mlp.down_proj"):
            prefix = name[: -len("down_proj")]
            assert torch.equal(plan.keep_cols[name], plan.keep_rows[prefix + "up_proj"])


@pytest.mark.parametrize("s", [0.2, 0.4])
def test_flap_removes_the_target_share_of_weights_within_one_unit(s):
    model, ctx, layers, plan = planned(s)
    apply_as_masks(layers, plan)
    assert abs(overall_sparsity(layers) - s) <= plan.granularity + 1e-9


def test_bias_compensation_brings_the_pruned_output_closer_to_the_dense_one():
    ids = torch.randint(0, 96, (4, 16), generator=torch.Generator().manual_seed(0))
    errors = {}
    for bias in (True, False):
        model, ctx, layers, plan = planned(0.3, bias=bias)
        dense = logits(tiny_llama(), ids)
        apply_as_masks(layers, plan)
        errors[bias] = (logits(model, ids) - dense).pow(2).mean().item()
    assert errors[True] < errors[False], errors


def test_the_pruning_step_records_parameter_counts_shapes_and_the_kept_units():
    model = tiny_llama()
    ctx = context(flap(), target(0.3))
    out = prune_model(ctx, model, ctx.task.prunable_layers(model))
    st = out["sparsity"]["structured"]
    assert st["parameters_after"] < st["parameters_before"]
    assert out["method_record"]["attention_groups"] == 2
    assert len(out["method_record"]["kept_mlp_channels"]) == 3
