"""flap-aligned: FLAP with each block's kept MLP width a multiple of ``align``; still smaller and exact."""

import pytest
import torch

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.masks import overall_sparsity
from sparsebench.pruning.pipeline import dense_statistics
from sparsebench.pruning.step import prune_model
from sparsebench.pruning.structured import apply_as_masks, compress, parameter_count
from sparsebench.targets import Target
from test_pruning_calibration import context, tiny_llama

aligned_counts = registry.sibling_module(registry.method("flap").file, "flap_aligned").aligned_counts


def method(name, **params):
    return registry.method(name).cls.build(params, name)


def planned(name, s, **params):
    model = tiny_llama()
    ctx = context(method(name, **params), Target.from_config({"sparsity": s, "pattern": "channel"}))
    layers = ctx.task.prunable_layers(model)
    blocks, dense = dense_statistics(ctx, model, layers)
    return model, layers, ctx.method.plan_structure(model, blocks, dense, ctx.target)


def test_rounding_keeps_multiples_of_align_and_the_total_closest_to_the_unrounded_one():
    got = aligned_counts([8803, 9100, 5000, 3], 11008, 128)
    assert all(w % 128 == 0 and 128 <= w <= 11008 for w in got)
    assert abs(sum(got) - (8803 + 9100 + 5000 + 3)) <= 64
    assert aligned_counts([60, 64], 64, 16) == [64, 64]
    assert aligned_counts([50], 60, 16) == [48]
    assert aligned_counts([59], 60, 16) == [60]  # the full width is allowed when it is not a multiple


@pytest.mark.parametrize("s", [0.2, 0.4])
def test_kept_mlp_widths_are_multiples_of_align_and_the_target_holds_within_the_plans_granularity(s):
    model, layers, plan = planned("flap-aligned", s, align=16)
    for name, keep in plan.keep_cols.items():
        if name.endswith("mlp.down_proj"):
            assert int(keep.sum()) % 16 == 0 and int(keep.sum()) >= 16
    apply_as_masks(layers, plan)
    assert abs(overall_sparsity(layers) - s) <= plan.granularity + 1e-9


def test_aligned_blocks_keep_their_highest_scoring_channels_a_superset_or_subset_of_flaps():
    _, _, flap = planned("flap", 0.4)
    _, _, aligned = planned("flap-aligned", 0.4, align=16)
    for name, keep in flap.keep_cols.items():
        if name.endswith("mlp.down_proj"):
            a = aligned.keep_cols[name]
            assert bool((keep & ~a).sum() == 0) or bool((a & ~keep).sum() == 0)


def test_the_aligned_model_is_smaller_and_gives_the_logits_of_the_masked_model():
    model, layers, plan = planned("flap-aligned", 0.3, align=16)
    apply_as_masks(layers, plan)
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        masked = model(ids, use_cache=False).logits
    before = parameter_count(layers)
    compress(layers, plan)
    assert parameter_count(layers) < before
    for name, mod in layers.items():
        if name.endswith("mlp.gate_proj"):
            assert mod.weight.shape[0] % 16 == 0
    with torch.no_grad():
        torch.testing.assert_close(model(ids, use_cache=False).logits, masked, rtol=1e-4, atol=1e-5)


def test_the_step_records_the_alignment_and_the_unaligned_widths():
    model = tiny_llama()
    ctx = context(method("flap-aligned", align=16), Target.from_config({"sparsity": 0.3, "pattern": "channel"}))
    rec = prune_model(ctx, model, ctx.task.prunable_layers(model))["method_record"]
    assert rec["align"] == 16 and len(rec["kept_mlp_channels_unaligned"]) == 3
    assert all(c % 16 == 0 for c in rec["kept_mlp_channels"])


def test_align_must_be_a_positive_integer_and_at_most_the_mlp_width():
    with pytest.raises(ConfigError, match="align"):
        method("flap-aligned", align=0)
    with pytest.raises(ValueError, match="align=128"):
        planned("flap-aligned", 0.3, align=128)


def test_plain_flap_is_unchanged_by_the_rounding_hook():
    assert registry.method("flap").cls.Params().__dict__.keys() == {"bias", "eora_rank"}
