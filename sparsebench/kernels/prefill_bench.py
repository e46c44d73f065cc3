"""Time to first token of the decode benchmark's model: dense causal SDPA vs our block-sparse attention.

One prefill = ``seq`` tokens through every layer (dense cuBLAS GEMMs for the linear layers in both
variants, rotary embedding, causal attention, SwiGLU MLP) and the LM head on the last token. Attention is
either causal SDPA (all blocks under the diagonal) or our Triton block-sparse kernel
(``block_attention.py``, causal inside the diagonal blocks) on a causal block table that keeps, per query
block, the diagonal block, the first block (attention sinks) and random earlier blocks up to ``density``
of the blocks it could see. Timed with CUDA events around eager prefills (each is tens to hundreds of
milliseconds: launches are negligible), median of ``repeats`` after one warm-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sparsebench.kernels.timing import median_event_ms

BLOCK = 128


def causal_table(n: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """(n, n) bool, lower-triangular: per query block the diagonal, block 0 and random earlier blocks, so
    that about ``density`` of the causal blocks are kept."""
    scores = torch.rand(n, n, generator=generator)
    scores.fill_diagonal_(3.0)
    scores[:, 0] = 2.0
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), -1.0)
    visible = torch.arange(1, n + 1)
    want = torch.clamp(torch.round(density * visible), min=torch.clamp(visible, max=2)).long()
    rank = scores.argsort(1, descending=True).argsort(1)
    return (rank < want[:, None]) & (scores >= 0)


def _rope(t, cos, sin):
    half = t.shape[-1] // 2
    return t * cos + torch.cat([-t[..., half:], t[..., :half]], -1) * sin


def prefill(model, x: torch.Tensor, attention) -> torch.Tensor:
    """Logits of the last token after ``x`` (seq, hidden) went through the model; ``attention(layer, q, k, v)``
    on (1, heads, seq, head_dim) tensors."""
    s = model.shape
    seq = x.shape[0]
    pos = torch.arange(seq, device=x.device).float()
    inv = 1.0 / (10000 ** (torch.arange(0, s.head_dim, 2, device=x.device).float() / s.head_dim))
    ang = pos[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1).half(), torch.cat([ang.sin()] * 2, -1).half()
    for i in range(model.layers):
        n1, n2 = model.norms[i]
        a = model._rms(x, n1)
        q, k, v = F.linear(a, model.w[i]["qkv"]).view(seq, 3, s.heads, s.head_dim).permute(1, 2, 0, 3).unsqueeze(1)
        att = attention(i, _rope(q, cos, sin), _rope(k, cos, sin), v.contiguous())
        x = x + F.linear(att.transpose(1, 2).reshape(seq, s.hidden), model.w[i]["o"])
        gu = F.linear(model._rms(x, n2), model.w[i]["gate_up"])
        x = x + F.linear(F.silu(gu[:, : s.intermediate]) * gu[:, s.intermediate:], model.w[i]["down"])
    return F.linear(model._rms(x[-1:], model.norms[-1][0]), model.head)


def run_prefill_bench(model, seqs=(16384, 32768), densities=(0.1,), repeats: int = 3, seed: int = 0,
                      log=print) -> list[dict]:
    from sparsebench.kernels.block_attention import block_sparse_attention, prepare, reference

    rows = []
    gen = torch.Generator().manual_seed(seed)
    for seq in seqs:
        x = torch.randn(seq, model.shape.hidden, generator=torch.Generator(device="cuda").manual_seed(seed),
                        device="cuda").half()
        dense_ms = median_event_ms(lambda: prefill(model, x, lambda i, q, k, v: F.scaled_dot_product_attention(
            q, k, v, is_causal=True)), repeats)
        rows.append({"variant": "dense", "tokens": seq, "ttft_ms": dense_ms, "speedup": 1.0})
        log(f"prefill {seq}: dense (causal SDPA) {dense_ms:.1f} ms")
        q, k, v = (torch.randn(1, model.shape.heads, seq, model.shape.head_dim, device="cuda").half() for _ in range(3))
        sdpa_ms = median_event_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 5)
        for density in densities:
            keep = causal_table(seq // BLOCK, density, gen).cuda()
            kept = float(keep.sum()) / (keep.shape[0] * (keep.shape[0] + 1) / 2)
            lists = prepare(keep, BLOCK)

            def attend(i, q, k, v, keep=keep, lists=lists):
                return block_sparse_attention(q, k, v, keep, BLOCK, lists=lists, causal=True)

            ms = median_event_ms(lambda: prefill(model, x, attend), repeats)
            att_ms = median_event_ms(lambda: attend(0, q, k, v), 5)
            rows_ = torch.tensor([0, keep.shape[0] // 2, keep.shape[0] - 1])
            ref, tok = reference(q, k, v, keep, BLOCK, rows_, causal=True)
            err = float((attend(0, q, k, v)[:, :, tok].float() - ref).norm() / ref.norm())
            rows.append({"variant": f"block-sparse-{density:g}", "tokens": seq, "ttft_ms": ms,
                         "speedup": dense_ms / ms, "causal_block_share": kept, "attention_ms": att_ms,
                         "sdpa_causal_ms": sdpa_ms, "attention_speedup": sdpa_ms / att_ms, "rel_error": err})
            log(f"prefill {seq}: block-sparse {kept:.3f} of causal blocks {ms:.1f} ms ({dense_ms / ms:.2f}x); "
                f"one layer's attention {att_ms:.2f} ms vs causal SDPA {sdpa_ms:.2f} ms; rel. error {err:.2g}")
        del x, q, k, v
        torch.cuda.empty_cache()
    return rows
