"""What each sparse-attention method's paper guarantees: the phases and layers it sparsifies, and its stages."""

import pytest
import torch

from sparsebench import registry
from sparsebench.attention import Budget, SparseAttention
from sparsebench.families.sparse_attention import forward_phase


def method(name, **params):
    return registry.method(name).cls.build(params, f"methods.{name}")


def tiny_llama(layers=4):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def test_each_method_sparsifies_the_phases_its_paper_does():
    phases = {n: e.cls.phases for n, e in registry.methods().items() if e.family == "sparse_attention"}
    assert phases["quest"] == ("decode",)  # Quest's code runs dense attention for multi-row calls
    assert phases["mustafar"] == ("decode",)  # the prompt attends unpruned K/V
    assert phases["vertical-slash"] == ("prefill",)  # MInference decodes densely
    assert phases["quest-prefill"] == ("prefill", "decode")  # our extension


def test_quest_leaves_layers_0_and_1_dense_and_sparsifies_the_rest_in_decode():
    model = tiny_llama(layers=4)
    ids = torch.randint(0, 64, (1, 160), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits[:, 128:-1]
        session = SparseAttention(method("quest"), 0.25, query_block=16).install(model)
        with session.active():
            out = forward_phase(model, session, ids, 128, "decode")
    stats = session.stats["decode"]
    assert stats[0].dense_layer and stats[1].dense_layer
    assert stats[0].density == 1.0 and stats[1].density == 1.0 and stats[0].tile_density == 1.0
    assert not stats[2].dense_layer and stats[2].density == pytest.approx(0.25, abs=0.02)
    summary = session.summary("decode")
    assert summary["sparse_layers_density"] == pytest.approx(0.25, abs=0.02)
    assert summary["density"] == pytest.approx((2 * 1.0 + 2 * summary["sparse_layers_density"]) / 4, abs=1e-6)
    assert not torch.allclose(out, ref, atol=1e-4)  # layers 2-3 did sparsify


def test_quest_prefill_extension_sparsifies_every_layer():
    assert all(method("quest-prefill").sparse_layer(i) for i in range(4))
    assert not method("quest").sparse_layer(1) and method("quest").sparse_layer(2)


def similar_block_keys(blocks=12, block=64, dim=16, noisy=(5,), seed=0):
    """Keys with a large shared component (as real keys have), each block around its own direction, except
    the ``noisy`` blocks whose tokens point anywhere (not self-similar once the shared part is removed)."""
    g = torch.Generator().manual_seed(seed)
    shared = 8 * torch.randn(dim, generator=g)
    dirs = torch.randn(blocks, 1, dim, generator=g)
    k = shared + 3 * dirs + 0.3 * torch.randn(blocks, block, dim, generator=g)
    for b in noisy:
        k[b] = shared + 3 * torch.randn(block, dim, generator=g)
    return k.reshape(1, 1, blocks * block, dim)


def test_sparge_similarity_on_mean_subtracted_keys_flags_the_block_that_is_not_self_similar():
    sim = __import__(registry.method("sparge").cls.__module__, fromlist=["self_similarity"]).self_similarity
    k = similar_block_keys()
    raw = sim(k, 64)[0, 0]
    smooth = sim(k - k.mean(dim=2, keepdim=True), 64)[0, 0]
    assert (raw > 0.6).all()  # the shared component hides the noisy block
    assert smooth[5] < 0.6 and (torch.cat([smooth[:5], smooth[6:]]) > 0.6).all()


def test_sparge_stage_1_always_computes_the_block_it_cannot_predict():
    k = similar_block_keys()
    q = torch.randn(1, 1, k.shape[2], k.shape[3], generator=torch.Generator().manual_seed(1))
    budget = Budget(0.25, "decode", k.shape[2] - 1, 1)  # one decode row: its own selection
    faithful = method("sparge", lam=-1e9).decide(q[:, :, -1:], k, budget, None).block_table()[0, 0, 0]
    no_filter = method("sparge", lam=-1e9, theta=-1.0).decide(q[:, :, -1:], k, budget, None).block_table()[0, 0, 0]
    assert faithful[5] and not torch.equal(faithful, no_filter)


def test_sparge_stage_2_skips_blocks_far_below_the_running_maximum():
    g = torch.Generator().manual_seed(2)
    dim, block = 16, 64
    q = torch.randn(1, 1, 1, dim, generator=g)
    k = 0.01 * torch.randn(1, 1, 8 * block, dim, generator=g)
    k[:, :, :block] = 40 * q / q.norm()  # the first block dominates every later score by far
    budget = Budget(1 / 2, "decode", k.shape[2] - 1, 1)
    kept = method("sparge", theta=-1.0, lam=-12.0).decide(q, k, budget, None).block_table()[0, 0, 0]
    stage1 = method("sparge", theta=-1.0, lam=-1e9).decide(q, k, budget, None).block_table()[0, 0, 0]
    assert kept[0] and stage1.sum() > kept.sum()  # stage 2 removed blocks stage 1 kept


def test_mustafar_prunes_the_cache_outside_its_dense_window_only():
    g = torch.Generator().manual_seed(3)
    k, v = torch.randn(1, 2, 300, 16, generator=g), torch.randn(1, 2, 300, 16, generator=g)
    kk, vv, (kept, total) = method("mustafar", window=128).compress_kv(k, v, Budget(0.25, "decode", 250, 50))
    pruned = 250 + 1 - 128
    assert ((kk[:, :, :pruned] != 0).sum(dim=-1) == 4).all() and ((vv[:, :, :pruned] != 0).sum(dim=-1) == 4).all()
    assert torch.equal(kk[:, :, pruned:], k[:, :, pruned:]) and torch.equal(vv[:, :, pruned:], v[:, :, pruned:])
    read = sum(min(p + 1, pruned) * 4 + max(0, p + 1 - pruned) * 16 for p in range(250, 300))
    assert kept / total == pytest.approx(read / sum((p + 1) * 16 for p in range(250, 300)))


def test_vertical_slash_forces_minferences_30_vertical_and_100_slash_lines():
    p = method("vertical-slash").params
    assert (p.sink_lines, p.local_lines) == (30, 100)
    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(1, 2, 1024, 16, generator=g), torch.randn(1, 2, 1024, 16, generator=g)
    pattern = method("vertical-slash").decide(q, k, Budget(0.5, "prefill", 0, 1024), None)
    assert pattern.vertical[..., :30].all() and pattern.slash[..., :100].all()


def test_vertical_slash_takes_the_forced_lines_with_the_most_mass_when_the_budget_cannot_pay_for_all():
    g = torch.Generator().manual_seed(5)
    q, k = torch.randn(1, 1, 1024, 16, generator=g), torch.randn(1, 1, 1024, 16, generator=g)
    m = method("vertical-slash", sink_lines=1000, local_lines=0)  # more forced lines than 1/16 pays for
    pattern = m.decide(q, k, Budget(1 / 16, "prefill", 0, 1024), None)
    vertical = __import__(type(m).__module__, fromlist=["line_scores"]).line_scores(
        q[:, :, -64:], k, torch.arange(960, 1024), 0.25)[0]
    kept, dropped = vertical[pattern.vertical], vertical[~pattern.vertical & (torch.arange(1024) < 1000)]
    assert kept.numel() and dropped.numel() and kept.min() >= dropped.max()
