"""The sequential calibration pipeline on a tiny random llama: pruned outputs feed the next block."""

import contextlib
import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sparsebench import registry
from sparsebench.pruning.pipeline import prune_sequentially
from sparsebench.masks import get_mask, mask_from_scores
from sparsebench.targets import Target

WINDOWS, LENGTH, BATCH = 4, 16, 2


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


class TinyTask:
    params = SimpleNamespace(batch_size=BATCH)

    def calibration_windows(self, seed):
        return torch.randint(0, 96, (WINDOWS, LENGTH), generator=torch.Generator().manual_seed(seed))

    def decoder_blocks(self, model):
        return model.model.layers

    def prunable_layers(self, model):
        return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".layers." in n}


class Recorder:
    """Magnitude masks, and a copy of every layer's input statistics."""

    needs_gram = True
    needs_input_moments = True

    def __init__(self):
        self.seen = {}

    def prune_layer(self, layer, target):
        self.seen[layer.name] = (layer.inputs.sum.clone(), layer.inputs.gram.clone(), layer.inputs.tokens)
        return mask_from_scores(layer.weight.abs(), target)


def context(method, target=Target(0.5), seed=0):
    timings = {}

    @contextlib.contextmanager
    def timer(name):
        yield
        timings[name] = timings.get(name, 0) + 1

    return SimpleNamespace(task=TinyTask(), method=method, target=target, seed=seed, generator=torch.Generator(),
                           device=torch.device("cpu"),
                           extra={}, timer=timer, timings=timings, log=lambda msg: None)


def inputs_of(model, module_name, ids):
    """Rows of the input that ``module_name`` sees when ``model`` runs on ``ids``."""
    got = []
    h = dict(model.named_modules())[module_name].register_forward_hook(lambda m, a, o: got.append(a[0].detach()))
    with torch.no_grad():
        for s in range(0, ids.shape[0], BATCH):
            model(ids[s : s + BATCH], use_cache=False)
    h.remove()
    return torch.cat([g.reshape(-1, g.shape[-1]) for g in got])


@pytest.fixture(scope="module")
def pruned():
    model = tiny_llama()
    dense = copy.deepcopy(model)
    rec = Recorder()
    ctx = context(rec)
    masks, _ = prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
    return model, dense, rec, ctx, masks


def test_every_linear_gets_a_mask_and_the_model_carries_it(pruned):
    model, _, _, ctx, masks = pruned
    layers = ctx.task.prunable_layers(model)
    assert set(masks) == set(layers) and len(masks) == 3 * 7
    for name, mod in layers.items():
        assert torch.equal(get_mask(mod), masks[name])


@pytest.mark.parametrize("block", [1, 2])
def test_block_statistics_come_from_the_already_pruned_blocks_before_it(pruned, block):
    model, dense, rec, ctx, _ = pruned
    ids = ctx.task.calibration_windows(ctx.seed)
    name = f"model.layers.{block}.self_attn.q_proj"  # its input depends on blocks < block only
    x_pruned = inputs_of(model, name, ids)  # blocks < block are pruned in `model`
    x_dense = inputs_of(dense, name, ids)
    seen_sum, seen_gram, tokens = rec.seen[name]
    assert tokens == WINDOWS * LENGTH
    torch.testing.assert_close(seen_sum.float(), x_pruned.sum(0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(seen_gram, x_pruned.T @ x_pruned, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(seen_gram, x_dense.T @ x_dense, rtol=1e-3, atol=1e-3)


def test_first_block_statistics_equal_the_dense_model_inputs(pruned):
    _, dense, rec, ctx, _ = pruned
    x = inputs_of(dense, "model.layers.0.self_attn.q_proj", ctx.task.calibration_windows(ctx.seed))
    torch.testing.assert_close(rec.seen["model.layers.0.self_attn.q_proj"][1], x.T @ x, rtol=1e-4, atol=1e-4)


def test_each_block_runs_twice_per_batch_so_activations_are_computed_once_per_job():
    model = tiny_llama()
    calls = {i: 0 for i in range(3)}
    for i, block in enumerate(model.model.layers):
        block.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
    ctx = context(Recorder())
    prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
    batches = WINDOWS // BATCH
    assert calls == {0: 2 * batches, 1: 2 * batches, 2: 2 * batches}  # statistics pass + pass of the pruned block


def test_result_records_calibration_size_seed_and_token_hash(pruned):
    _, _, _, ctx, _ = pruned
    cal = ctx.extra["calibration"]
    assert (cal["windows"], cal["window"], cal["seed"]) == (WINDOWS, LENGTH, 0)
    assert len(cal["tokens_sha256"]) == 64
    assert ctx.timings["calibration"] >= 1


def test_sparsegpt_through_the_pipeline_writes_zeros_where_it_masks_and_is_deterministic():
    runs = []
    for _ in range(2):
        model = tiny_llama()
        method = registry.method("sparsegpt").cls()
        ctx = context(method, Target.from_config({"pattern": "2:4"}))
        masks, _ = prune_sequentially(ctx, model, ctx.task.prunable_layers(model))
        layers = ctx.task.prunable_layers(model)
        for name, mod in layers.items():
            assert (mod.parametrizations.weight.original[~masks[name]] == 0).all()
        runs.append((masks, {n: m.weight.detach().clone() for n, m in layers.items()}))
    (m1, w1), (m2, w2) = runs
    assert all(torch.equal(m1[n], m2[n]) and torch.equal(w1[n], w2[n]) for n in m1)


class _Block(nn.Module):
    """q/k/v read one tensor, o reads another: the shape of a decoder block's linears."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v, self.o = (nn.Linear(8, 8) for _ in range(4))

    def forward(self, x):
        return self.o(self.q(x) + self.k(x) * self.v(x))


def test_linears_fed_by_one_tensor_share_one_statistics_object_equal_to_their_own():
    from sparsebench.pruning.calibration import LayerInputs, collect_layer_inputs

    block = _Block()
    linears = {n: getattr(block, n) for n in "qkvo"}
    inputs = [torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    stats = collect_layer_inputs(block, linears, inputs, [{}] * 3, with_gram=True, with_moments=True)
    assert stats["q"] is stats["k"] is stats["v"] and stats["o"] is not stats["q"]
    alone = LayerInputs(8)
    for x in inputs:
        alone.add(x)
    assert stats["q"].tokens == alone.tokens == 30
    torch.testing.assert_close(stats["q"].gram, alone.gram)
    torch.testing.assert_close(stats["q"].norm_sq, alone.norm_sq)
    torch.testing.assert_close(stats["q"].variance, alone.variance)
    torch.testing.assert_close(stats["q"].norm_sq, inputs_sq := torch.cat([x.reshape(-1, 8) for x in inputs]).square().sum(0))
    assert inputs_sq.shape == (8,)


def test_moments_a_method_did_not_ask_for_raise_instead_of_reading_zeros():
    from sparsebench.pruning.calibration import LayerInputs

    s = LayerInputs(4, with_gram=False, with_moments=False)
    s.add(torch.randn(2, 3, 4))
    assert s.gram is None and s.norm_sq.shape == (4,)
    with pytest.raises(ValueError, match="needs_input_moments"):
        s.variance
