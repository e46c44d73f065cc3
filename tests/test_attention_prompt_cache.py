"""The decode phase's dense prompt is computed once and reused; the reference executor works in row chunks.

Both are speed-ups that must not change a number: a job that reads the cached
prompt gives the same logits, density and recall as one that computes it, and
a chunked mask equals the rows of the whole mask.
"""

import pytest
import torch

from sparsebench import registry
from sparsebench.attention import Budget, SparseAttention, masked_attention
from sparsebench.attention import prompt_cache
from sparsebench.families.sparse_attention import forward_phase
from tests.test_sparse_attention_core import tiny_llama

SOURCE = {"model": "tiny-llama", "seed": 0}


@pytest.mark.parametrize("method", ["vertical-slash", "quest", "streaming-llm"])
def test_a_cached_dense_prompt_gives_the_decode_phase_exactly_what_computing_it_gives(method, tmp_path, monkeypatch):
    monkeypatch.setattr(prompt_cache, "CACHE_DIR", tmp_path)
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 160), generator=torch.Generator().manual_seed(3))
    runs = []
    for source in (None, SOURCE, SOURCE):  # computed in place, then stored, then read back
        session = SparseAttention(registry.method(method).cls(), 0.25, query_block=16).install(model)
        origins = []
        with torch.no_grad(), session.active():
            logits = forward_phase(model, session, ids, 128, "decode", source, origins)
        runs.append((logits, session.summary("decode"), origins))
    assert [r[2] for r in runs] == [[], ["stored"], ["hit"]]
    for logits, summary, _ in runs[1:]:
        assert torch.equal(logits, runs[0][0])
        assert summary["density"] == runs[0][1]["density"] and summary["recall"] == runs[0][1]["recall"]
    assert len(list(tmp_path.glob("dense-prompt-*"))) == 1


def test_the_prompt_cache_key_changes_with_the_tokens_and_the_prompt_length(tmp_path, monkeypatch):
    monkeypatch.setattr(prompt_cache, "CACHE_DIR", tmp_path)
    model = tiny_llama()
    ids = torch.randint(0, 64, (1, 96), generator=torch.Generator().manual_seed(4))
    other = ids.clone()
    other[0, 5] = (other[0, 5] + 1) % 64
    session = SparseAttention(registry.method("quest").cls(), 0.5, query_block=16).install(model)
    with torch.no_grad(), session.active():
        for x, prompt in ((ids, 80), (ids, 64), (other, 80), (ids, 80)):
            forward_phase(model, session, x, prompt, "decode", SOURCE, [])
    assert len(list(tmp_path.glob("dense-prompt-*"))) == 3


@pytest.mark.parametrize("method", ["quest", "vertical-slash", "streaming-llm", "nsa-selection", "sparge"])
@pytest.mark.parametrize("phase,q0,rows", [("prefill", 0, 300), ("decode", 250, 50)])
def test_a_patterns_row_range_masks_are_the_rows_of_its_whole_mask(method, phase, q0, rows):
    g = torch.Generator().manual_seed(5)
    q = torch.randn(1, 4, q0 + rows, 16, generator=g)
    k = torch.randn(1, 4, q0 + rows, 16, generator=g)
    budget = Budget(0.25, phase, q0, rows, query_block=32)
    pattern = registry.method(method).cls().decide(q[:, :, q0:], k, budget, q[:, :, :q0][:, :, -64:] if q0 else None)
    whole = pattern.token_mask()
    for r0, r1 in ((0, 7), (5, rows // 2 + 3), (rows // 3, rows), (rows - 3, rows)):
        part = pattern.token_mask(r0, r1)
        assert torch.equal(part, whole[:, :, r0:r1, : q0 + r1])
        assert not whole[:, :, r0:r1, q0 + r1 :].any()  # what a range leaves out is never causal


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_chunked_masked_attention_equals_one_pass(chunk):
    g = torch.Generator().manual_seed(6)
    q0, rows = 40, 90
    q = torch.randn(2, 3, rows, 8, generator=g)
    k = torch.randn(2, 3, q0 + rows, 8, generator=g)
    v = torch.randn(2, 3, q0 + rows, 8, generator=g)
    keep = torch.rand(2, 3, rows, q0 + rows, generator=g) < 0.3
    ref, ref_stats = masked_attention(q, k, v, keep, 0.35, q0, chunk=rows)
    out, stats = masked_attention(q, k, v, keep, 0.35, q0, chunk=chunk)
    assert torch.allclose(out, ref, atol=1e-6, rtol=1e-5)
    assert stats.kept_pairs == ref_stats.kept_pairs and stats.recall_rows == ref_stats.recall_rows
    assert stats.recall == pytest.approx(ref_stats.recall, rel=1e-6)
    # exactly the definition: softmax over the kept causal keys (each row keeps itself)
    causal = torch.arange(q0 + rows)[None, :] <= torch.arange(q0, q0 + rows)[:, None]
    kept = keep & causal
    kept[..., torch.arange(rows), torch.arange(q0, q0 + rows)] = True
    p = torch.softmax((q @ k.transpose(-1, -2) * 0.35).masked_fill(~kept, float("-inf")), dim=-1)
    assert torch.allclose(out, p @ v, atol=1e-5)
    assert stats.kept_pairs == int(kept.sum())
