"""The FlexAttention executor runs exactly the method's decision, from a BlockMask built at block granularity.

On CPU flex_attention runs eagerly (an unfused path that applies the mask_mod
to every pair); the block lists are checked separately against the tiles that
hold kept pairs, since the compiled kernel visits only the listed tiles and
skips the mask_mod inside full ones.
"""

import pytest
import torch

from sparsebench import registry
from sparsebench.attention import Budget, masked_attention
from sparsebench.attention.flex import flex_attention_forward, resolve_executor
from sparsebench.attention.pattern import block_mask
from sparsebench.errors import ConfigError

METHODS = sorted(n for n, e in registry.methods().items() if e.family == "sparse_attention")
BLOCK_METHODS = ["quest-prefill", "sparge"]  # prefill decisions made of whole key blocks per query block


def qkv(seq=500, heads=4, kv_heads=2, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, heads, seq, dim, generator=g), torch.randn(1, kv_heads, seq, dim, generator=g),
            torch.randn(1, kv_heads, seq, dim, generator=g))


def decide(name, q, k, v, density, phase, q0, **params):
    method = registry.method(name).cls.build(params, f"methods.{name}")
    budget = Budget(density, phase, q0, q.shape[2] - q0, 64, k.shape[1])
    k, v, _ = method.compress_kv(k, v, budget)
    kh = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    pattern = method.decide(q[:, :, q0:], kh, budget, q[:, :, q0 - 64 : q0] if q0 else None)
    return pattern, k, v


def tiles_of(token_mask, tiling):
    """(B, H, n_q, n_kv): tiles of a token mask holding a kept pair, and tiles wholly kept (test-side pooling)."""
    b, h, rows, keys = token_mask.shape
    pad = (0, tiling.n_kv * tiling.kv_block - keys, 0, tiling.n_q * tiling.q_tile - rows)
    m = torch.nn.functional.pad(token_mask, pad)
    m = m.reshape(b, h, tiling.n_q, tiling.q_tile, tiling.n_kv, tiling.kv_block)
    return m.any(dim=(3, 5)), m.all(dim=(3, 5))


@pytest.mark.parametrize("density", [1 / 4, 1 / 8])
@pytest.mark.parametrize("phase,q0", [("prefill", 0), ("decode", 390)])
@pytest.mark.parametrize("name", METHODS)
def test_flex_executor_output_equals_the_reference_executor(name, phase, q0, density):
    q, k, v = qkv()
    pattern, kk, vv = decide(name, q, k, v, density, phase, q0)
    scaling = q.shape[-1] ** -0.5
    rep = q.shape[1] // k.shape[1]
    ref, _ = masked_attention(q[:, :, q0:], kk.repeat_interleave(rep, 1), vv.repeat_interleave(rep, 1),
                              pattern.token_mask(), scaling, q0)
    out, _ = flex_attention_forward(q[:, :, q0:], kk, vv, pattern, scaling)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5


@pytest.mark.parametrize("density", [1.0, 1 / 4, 1 / 8])
@pytest.mark.parametrize("phase,q0", [("prefill", 0), ("decode", 390)])
@pytest.mark.parametrize("name", METHODS)
def test_block_mask_lists_exactly_the_tiles_with_kept_pairs_and_full_tiles_are_wholly_kept(name, phase, q0, density):
    q, k, v = qkv()
    pattern, _, _ = decide(name, q, k, v, density, phase, q0)
    tiling = pattern.tiling()
    any_kept, all_kept = tiles_of(pattern.token_mask(), tiling)
    mask = block_mask(pattern)
    listed = mask.to_dense().bool()  # partial | full, as the kernel walks them
    full = torch.zeros_like(listed)
    for b, h, t in torch.nonzero(torch.ones(listed.shape[:3], dtype=torch.bool)).tolist():
        full[b, h, t, mask.full_kv_indices[b, h, t, : mask.full_kv_num_blocks[b, h, t]].long()] = True
    assert torch.equal(listed, any_kept.expand_as(listed))
    assert not (full & ~all_kept).any()  # the kernel skips the mask_mod there: every pair must be kept


@pytest.mark.parametrize("density", [1 / 4, 1 / 8])
@pytest.mark.parametrize("name", BLOCK_METHODS)
def test_block_methods_block_mask_density_equals_their_block_decision(name, density):
    q, k, v = qkv(seq=1000)  # long enough for 1/8 to pay for blocks beyond the diagonal
    # random keys are never self-similar, so SpargeAttn would compute every block: let it predict them all
    params = {"theta": -1.0} if name == "sparge" else {}
    pattern, _, _ = decide(name, q, k, v, density, "prefill", 0, **params)
    tiling = pattern.tiling()
    assert tiling.q_tile == pattern.group and tiling.kv_block == pattern.block
    decided = pattern.block_table() & tiling.causal_tiles()[0]  # (B, H, query blocks, key blocks)
    mask = block_mask(pattern)
    listed = mask.to_dense().bool()
    assert torch.equal(listed, decided)
    assert mask.full_kv_num_blocks.sum() > 0  # selected blocks are run whole, without the mask_mod
    assert listed.float().mean() < 0.5  # the budget left blocks out: the kernel skips them


def test_mustafar_has_no_block_kernel_and_stays_on_the_reference_path():
    from sparsebench.attention import SparseAttention

    session = SparseAttention(registry.method("mustafar").cls(), 0.25, executor="flex")
    assert session.executor == "reference"
    assert SparseAttention(registry.method("quest-prefill").cls(), 0.25, executor="flex").executor == "flex"


def test_flex_session_inside_a_llama_model_matches_the_reference_session():
    from sparsebench.attention import SparseAttention
    from sparsebench.families.sparse_attention import forward_phase
    from tests.test_sparse_attention_core import tiny_llama

    model = tiny_llama()
    ids = torch.randint(0, 64, (1, 160), generator=torch.Generator().manual_seed(3))
    outs = {}
    with torch.no_grad():
        for executor in ("reference", "flex"):
            session = SparseAttention(registry.method("quest-prefill").cls(), 0.25, query_block=16,
                                      executor=executor).install(model)
            with session.active():
                outs[executor] = [forward_phase(model, session, ids, 128, p) for p in ("prefill", "decode")]
                density = session.summary("prefill")["density"]
            assert density == pytest.approx(0.25, abs=0.02)
    for ref, out in zip(outs["reference"], outs["flex"]):
        assert ((out - ref).norm() / ref.norm()).item() < 1e-5


def test_executor_auto_follows_the_profiles_backends_and_bad_values_name_the_allowed_ones():
    from sparsebench.hardware import profile

    assert resolve_executor("auto", profile("cpu")) == "reference"
    assert resolve_executor("auto", profile("h100")) == "flex"
    assert resolve_executor("reference", profile("h100")) == "reference"
    with pytest.raises(ConfigError, match="has no 'flex_attention' backend.*allowed here: auto, reference"):
        resolve_executor("flex", profile("cpu"))
    with pytest.raises(ConfigError, match=r"task.executor='fast'; allowed: auto, reference, flex"):
        resolve_executor("fast", profile("cpu"))


def test_a_flex_job_on_a_profile_without_flex_attention_fails_naming_the_key(tmp_path):
    from sparsebench.runner import run_job
    from tests.test_sparse_attention_tasks import attention_job

    with pytest.raises(ConfigError, match=r"job.task_params.executor='flex'.*allowed here: auto, reference"):
        run_job(attention_job("quest-prefill", 0.75, executor="flex"), tmp_path / "r.json")
    with pytest.raises(ConfigError, match=r"executor='fast'; allowed: auto, reference, flex"):
        attention_job("quest-prefill", 0.75, executor="fast")


TRITON_BACKEND_CHECK = """
import torch
from sparsebench import registry
from sparsebench.attention import SparseAttention, masked_attention
from sparsebench.attention.flex import triton_attention_forward
from sparsebench.families.sparse_attention import forward_phase
from tests.test_attention_flex import decide, qkv
from transformers import LlamaConfig, LlamaForCausalLM
for name in ("quest-prefill", "sparge"):  # whole key blocks per query block: exact on whole tiles
    for density in (1 / 4, 1 / 8):
        q, k, v = qkv(seq=384)
        pattern, kk, vv = decide(name, q, k, v, density, "prefill", 0)
        scaling = q.shape[-1] ** -0.5
        rep = q.shape[1] // k.shape[1]
        ref, _ = masked_attention(q, kk.repeat_interleave(rep, 1), vv.repeat_interleave(rep, 1), pattern.token_mask(),
                                  scaling, 0)
        out, _ = triton_attention_forward(q, kk, vv, pattern, scaling)
        assert float((out - ref).norm() / ref.norm()) < 1e-5, (name, density)
q, k, v = qkv(seq=384)
pattern, kk, vv = decide("sliding-window", q, k, v, 1 / 4, "prefill", 0)
try:
    triton_attention_forward(q, kk, vv, pattern, q.shape[-1] ** -0.5)
    raise SystemExit("a window that cuts tiles must be refused")
except ValueError as exc:
    assert "attention_kernel=flex" in str(exc), exc
# inside a model: the flex executor on the Triton kernel equals the reference session (prefill)
torch.manual_seed(0)  # heads of 16 (the kernel's smallest head_dim)
model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)).eval()
ids = torch.randint(0, 64, (1, 160), generator=torch.Generator().manual_seed(3))
outs = {}
with torch.no_grad():
    for executor, kernel in (("reference", "flex"), ("flex", "triton")):
        session = SparseAttention(registry.method("quest-prefill").cls(), 0.25, query_block=16, executor=executor,
                                  kernel=kernel).install(model)
        with session.active():
            outs[kernel] = forward_phase(model, session, ids, 128, "prefill")
assert float((outs["triton"] - outs["flex"]).norm() / outs["flex"].norm()) < 1e-5
print("ok")
"""


def test_flex_executor_on_the_triton_kernel_runs_block_methods_exactly_and_refuses_cut_tiles(root):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", TRITON_BACKEND_CHECK], env=env, capture_output=True, text=True,
                         timeout=600, cwd=str(root))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


TRITON_DECODE_CHECK = """
import torch
from sparsebench import registry
from sparsebench.attention import SparseAttention, masked_attention
from sparsebench.attention.flex import triton_decode_forward
from sparsebench.families.sparse_attention import forward_phase
from tests.test_attention_flex import decide, qkv
from transformers import LlamaConfig, LlamaForCausalLM
# decode rows (the last 40 of 300 keys), one key selection per row: whole blocks under the causal rule
for name, params in (("quest", {}), ("quest", {"block": 32}), ("full-attention", {})):
    for density in (1 / 4, 1 / 8):
        q, k, v = qkv(seq=300)
        pattern, kk, vv = decide(name, q, k, v, density, "decode", 260, **params)
        scaling = q.shape[-1] ** -0.5
        rep = q.shape[1] // k.shape[1]
        ref, _ = masked_attention(q[:, :, 260:], kk.repeat_interleave(rep, 1), vv.repeat_interleave(rep, 1),
                                  pattern.token_mask(), scaling, 260)
        out = triton_decode_forward(q[:, :, 260:], kk, vv, pattern, scaling)
        assert float((out - ref).norm() / ref.norm()) < 1e-5, (name, params, density)
# a window that cuts key blocks (NSA's selection branch), token-level lines: refused, naming the allowed kernel
for name in ("nsa-selection", "vertical-slash"):
    q, k, v = qkv(seq=300)
    pattern, kk, vv = decide(name, q, k, v, 1 / 4, "decode", 260)
    try:
        triton_decode_forward(q[:, :, 260:], kk, vv, pattern, q.shape[-1] ** -0.5)
        raise SystemExit(name + " must be refused")
    except ValueError as exc:
        assert "attention_kernel=flex" in str(exc), exc
# inside a model: Quest's decode rows on the Triton decode kernel equal the reference session, and the session
# records which kernel ran in which phase
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)).eval()
ids = torch.randint(0, 64, (1, 160), generator=torch.Generator().manual_seed(3))
outs, ran = {}, {}
with torch.no_grad():
    for executor, kernel in (("reference", "flex"), ("flex", "triton")):
        method = registry.method("quest").cls.build({"dense_layers": 0}, "methods.quest")
        session = SparseAttention(method, 0.25, query_block=16, executor=executor, kernel=kernel).install(model)
        with session.active():
            outs[kernel] = forward_phase(model, session, ids, 128, "decode")
        ran[kernel] = dict(session.kernels_ran)
assert float((outs["triton"] - outs["flex"]).norm() / outs["flex"].norm()) < 1e-5
assert ran == {"flex": {}, "triton": {"decode": {"triton_block_decode"}}}, ran
print("ok")
"""


def test_flex_executor_runs_decode_rows_on_the_triton_decode_kernel_exactly_and_records_it(root):
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", TRITON_DECODE_CHECK], env=env, capture_output=True, text=True,
                         timeout=600, cwd=str(root))
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_attention_kernel_is_checked_against_the_profile_and_the_executor(tmp_path):
    from sparsebench.attention.flex import resolve_kernel
    from sparsebench.hardware import profile
    from sparsebench.runner import run_job
    from tests.test_sparse_attention_tasks import attention_job

    assert resolve_kernel("triton", profile("h200")) == "triton"
    with pytest.raises(ConfigError, match=r"attention_kernel='triton'.*no 'triton_block_attention' backend"):
        resolve_kernel("triton", profile("cpu"), "task.attention_kernel")
    with pytest.raises(ConfigError, match=r"task.attention_kernel='cuda'; allowed: flex, triton"):
        resolve_kernel("cuda", profile("h200"))
    with pytest.raises(ConfigError, match=r"attention_kernel='triton' needs executor 'flex'"):
        run_job(attention_job("quest-prefill", 0.75, attention_kernel="triton"), tmp_path / "r.json")


@pytest.mark.gpu
@pytest.mark.parametrize("density", [0.05, 0.25])
def test_triton_decode_kernel_runs_quest_decode_rows_on_cuda(density):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, 4096, 128, generator=g) for h in (32, 8, 8))
    pattern, kk, vv = decide("quest", q, k, v, density, "decode", 4064)
    from sparsebench.attention.flex import triton_decode_forward

    scaling = 128 ** -0.5
    ref, _ = masked_attention(q[:, :, 4064:], kk.repeat_interleave(4, 1), vv.repeat_interleave(4, 1),
                              pattern.token_mask(), scaling, 4064)
    out = triton_decode_forward(q[:, :, 4064:].half().cuda(), kk.half().cuda(), vv.half().cuda(), pattern, scaling)
    assert float((out.float().cpu() - ref).norm() / ref.norm()) < 1e-2
