"""The sparse-attention core: budgets, targets, and the hook into transformers' attention registry."""

import pytest
import torch

from sparsebench.attention import Budget, SparseAttention, density_of
from sparsebench.errors import ConfigError
from sparsebench.targets import Target


@pytest.mark.parametrize("density", [1.0, 0.5, 0.25, 0.125, 0.0625])
@pytest.mark.parametrize("q0,rows", [(0, 1000), (700, 300), (2047, 1)])
def test_row_allowances_sum_to_density_times_causal_pairs(density, q0, rows):
    b = Budget(density, "decode", q0, rows)
    per = b.pairs_per_row()
    assert (per >= 1).all() and (per <= b.causal_per_row()).all()
    assert abs(int(per.sum()) - density * b.causal_pairs()) <= max(1, (per == 1).sum())


def test_a_target_is_one_minus_density_and_other_patterns_are_refused():
    assert density_of(Target.from_config({"sparsity": 0.75})) == 0.25
    assert density_of(Target.from_config({"sparsity": 0.875, "pattern": "block:64"})) == 0.125
    with pytest.raises(ConfigError, match="sparse attention takes"):
        density_of(Target.from_config({"pattern": "2:4"}))


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(cfg).eval()


def test_registered_attention_at_density_one_matches_sdpa_inside_a_llama_model():
    from sparsebench import registry
    from sparsebench.families.sparse_attention import forward_phase

    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 96), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits[:, 80:-1]
        session = SparseAttention(registry.method("quest").cls(), 1.0, query_block=16).install(model)
        with session.active():
            for phase in ("prefill", "decode"):
                out = forward_phase(model, session, ids, 80, phase)
                assert ((out - ref).norm() / ref.norm()).item() < 1e-5
                assert session.summary(phase)["density"] == pytest.approx(1.0)
    assert set(session.stats["prefill"]) == {0, 1}  # per layer


def test_a_sparse_phase_changes_only_its_own_rows():
    from sparsebench import registry
    from sparsebench.families.sparse_attention import forward_phase

    model = tiny_llama()
    ids = torch.randint(0, 64, (1, 128), generator=torch.Generator().manual_seed(2))
    session = SparseAttention(registry.method("sliding-window").cls(), 0.25, query_block=16).install(model)
    with torch.no_grad(), session.active():
        dense = model(ids).logits[:, 100:-1]
        decode = forward_phase(model, session, ids, 100, "decode")
        prefill = forward_phase(model, session, ids, 100, "prefill")
    assert not torch.allclose(decode, dense) and not torch.allclose(prefill, dense)
    assert session.summary("decode")["causal_pairs"] == 2 * 4 * sum(range(101, 129))  # layers x heads x rows
