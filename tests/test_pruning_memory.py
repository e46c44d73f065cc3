"""What the block-by-block pruning pipeline keeps alive: the device peak of a 7B job is set by these lifetimes
(docs/hardware.md), so each is pinned here on a tiny llama on the CPU."""

import gc
import weakref

import pytest
import torch

import sparsebench.pruning.pipeline as pipeline
from sparsebench import registry
from sparsebench.masks import mask_from_scores
from sparsebench.pruning.pipeline import prune_sequentially
from test_pruning_calibration import context, tiny_llama


class Watcher:
    """Magnitude masks; remembers (weakly) every statistics object it was handed."""

    needs_gram = True
    needs_input_moments = False

    def __init__(self):
        self.stats = []

    def prune_layer(self, layer, target):
        self.stats.append(weakref.ref(layer.inputs))
        return mask_from_scores(layer.weight.abs(), target)


def alive(refs):
    gc.collect()
    return sum(r() is not None for r in refs)


def test_the_activations_captured_at_block_0_are_freed_once_the_pruned_block_0_has_replaced_them(monkeypatch):
    captured = []
    real = pipeline.capture_block_inputs

    def spy(*args, **kwargs):
        inputs, kwargs_ = real(*args, **kwargs)
        captured.extend(weakref.ref(x) for x in inputs)
        return inputs, kwargs_

    monkeypatch.setattr(pipeline, "capture_block_inputs", spy)
    model = tiny_llama()
    seen = []  # at each forward of blocks 1 and 2: how many block-0 inputs are still alive
    for block in list(model.model.layers)[1:]:
        block.register_forward_pre_hook(lambda m, a: seen.append(alive(captured)))
    ctx = context(Watcher())
    prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
    assert captured and seen and set(seen) == {0}


def test_a_block_s_statistics_are_freed_before_its_pruned_block_runs_again():
    model = tiny_llama()
    method = Watcher()
    seen = []  # at each block forward: statistics objects of layers already pruned that are still alive
    for block in model.model.layers:
        block.register_forward_pre_hook(lambda m, a: seen.append(alive(method.stats)))
    ctx = context(method)
    prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
    assert method.stats and set(seen) == {0}


def test_re_running_a_block_drops_each_input_batch_once_its_output_exists():
    from sparsebench.lm.blocks import run_block

    block = tiny_llama().model.layers[0]
    pos = torch.arange(8).unsqueeze(0)
    rotary = tiny_llama().model.rotary_emb
    inputs = [torch.randn(2, 8, 32) for _ in range(3)]
    kw = [{"position_embeddings": rotary(inputs[0], pos), "attention_mask": None}] * 3
    refs = [weakref.ref(x) for x in inputs]
    with torch.no_grad():
        kept = run_block(block, inputs, kw)  # the caller still needs its inputs: kept
        assert alive(refs) == 3 and all(x is not None for x in inputs)
        outs = run_block(block, inputs, kw, consume=True)
    assert alive(refs) == 0 and inputs == [None] * 3
    for a, b in zip(kept, outs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method_name,copies", [("sparsegpt", False), ("wanda", True), ("magnitude", True)])
def test_a_block_visit_checks_for_unchanged_weights_only_for_methods_that_may_leave_them_unchanged(
        method_name, copies, monkeypatch):
    from sparsebench.placement import visit_device

    method = registry.method(method_name).cls()
    visits = []

    def spy(module, device, check_unchanged=True):
        visits.append(check_unchanged)
        return visit_device(module, device, check_unchanged)

    monkeypatch.setattr(pipeline, "visit_device", spy)
    model = tiny_llama()
    ctx = context(method)
    prune_sequentially(ctx, model, ctx.task.prunable_layers(model), offload=True)
    assert visits == [copies] * 3


def test_a_visit_that_does_not_check_takes_no_copy_and_returns_every_weight():
    from sparsebench.placement import visit_device

    lin = torch.nn.Linear(4, 3)
    visit = visit_device(lin, torch.device("cpu"), check_unchanged=False)
    assert all(copy is None for _, _, copy in visit.arrived)
    lin.weight.data.mul_(0)
    visit.back()
    assert torch.equal(lin.weight.data, torch.zeros(3, 4))


def test_cpu_statistics_keep_their_float64_sum_of_float32_squares_bit_for_bit():
    from sparsebench.pruning.calibration import LayerInputs

    x = torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    for with_gram in (False, True):
        stats = LayerInputs(8, with_gram=with_gram, with_moments=False)
        stats.add(x)
        want = x.float().reshape(-1, 8).square().sum(0, dtype=torch.float64)
        assert torch.equal(stats.sq_sum, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the low-precision reduction without a copy is CUDA's")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_statistics_of_a_low_precision_batch_agree_with_the_float64_sum(dtype):
    from sparsebench.pruning.calibration import column_sq_sum

    x = torch.randn(4096, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    want = x.double().square().sum(0)
    torch.testing.assert_close(column_sq_sum(x.cuda()).cpu(), want, rtol=1e-5, atol=0)


def test_applying_masks_a_layer_already_carries_computes_no_masked_weight(monkeypatch):
    from sparsebench.masks import WeightMask, apply_mask, apply_masks

    lin = torch.nn.Linear(8, 4)
    mask = torch.rand(4, 8, generator=torch.Generator().manual_seed(0)) > 0.5
    apply_mask(lin, mask)
    calls = []
    real = WeightMask.forward
    monkeypatch.setattr(WeightMask, "forward", lambda self, w: calls.append(1) or real(self, w))
    apply_masks({"lin": lin}, {"lin": mask})  # the pipeline hands back the masks the layers carry
    new = ~mask
    apply_mask(lin, new)  # a new mask replaces the old one, still without computing W * M
    assert calls == []
    assert torch.equal(lin.parametrizations.weight[0].mask, new)
    with pytest.raises(ValueError, match="mask shape"):
        apply_mask(lin, torch.ones(3, 8, dtype=torch.bool))


def test_checking_and_recording_sparsity_computes_no_masked_weight(monkeypatch):
    from sparsebench.masks import WeightMask, apply_mask, check_target, sparsity_record
    from sparsebench.targets import Target

    layers = {f"l{i}": torch.nn.Linear(8, 4) for i in range(2)}
    for lin in layers.values():
        apply_mask(lin, torch.arange(32).reshape(4, 8) % 2 == 0)
    calls = []
    real = WeightMask.forward
    monkeypatch.setattr(WeightMask, "forward", lambda self, w: calls.append(1) or real(self, w))
    check_target(layers, Target(0.5))
    record = sparsity_record(layers, Target(0.5))
    assert calls == [] and record["measured"] == 0.5
