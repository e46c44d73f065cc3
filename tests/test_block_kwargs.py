"""Block-by-block calibration hands every block the arguments the model itself would.

Gemma 3 interleaves sliding-window layers with global ones: each kind gets its
own attention mask and rotary table from the model's loop. Running the blocks
one at a time on block 0's arguments (enough for llama-style models, whose
blocks all get the same) would give the global layers a sliding-window mask
and the local rotary base.
"""

import torch

from sparsebench.lm.blocks import block_kwargs, capture_block_inputs, run_block


def tiny_gemma3():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                           num_attention_heads=4, num_key_value_heads=1, head_dim=8, sliding_window=8,
                           layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                           max_position_embeddings=256)
    return Gemma3ForCausalLM(cfg).eval()


def blockwise_last_hidden(model, ids, per_block: bool):
    blocks = model.model.layers
    inputs, kwargs = capture_block_inputs(model, blocks[0], ids, 2)
    kwargs_of = block_kwargs(model, blocks, ids, 2, kwargs) if per_block else [kwargs] * len(blocks)
    for block, kw in zip(blocks, kwargs_of):
        inputs = run_block(block, inputs, kw)
    return torch.cat(inputs)


@torch.no_grad()
def test_blocks_run_one_at_a_time_reproduce_the_models_own_forward_on_mixed_layer_kinds():
    model = tiny_gemma3()
    ids = torch.randint(0, 64, (4, 40), generator=torch.Generator().manual_seed(1))
    captured = []
    handle = model.model.norm.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    model(ids, use_cache=False)
    handle.remove()
    assert torch.allclose(blockwise_last_hidden(model, ids, per_block=True), captured[0], atol=1e-5)
    # block 0's arguments everywhere (a sliding-window mask on the global layers) is not the model
    assert not torch.allclose(blockwise_last_hidden(model, ids, per_block=False), captured[0], atol=1e-3)
    assert list(model.model.layers)[0].__class__.__name__ == "Gemma3DecoderLayer"  # the blocks are back


def test_models_with_one_layer_kind_share_block_zeros_arguments():
    from tests.test_sparse_attention_core import tiny_llama

    model = tiny_llama()
    shared = [{"x": 1}]
    assert all(kw is shared for kw in block_kwargs(model, model.model.layers, torch.zeros(1, 4, dtype=torch.long), 1,
                                                   shared))


class _Tokenizer:
    """Whitespace words as ids (enough for token_stream): BOS 1, EOS 2."""

    bos_token_id, eos_token_id = 1, 2

    def __call__(self, text, add_special_tokens=False):
        if isinstance(text, list):  # a batch, as Hugging Face tokenizers take it
            return {"input_ids": [self(t)["input_ids"] for t in text]}
        return {"input_ids": [3 + len(w) % 50 for w in text.split()]}


def test_a_bos_first_task_starts_every_window_with_bos_and_keeps_the_text_order():
    from sparsebench import registry

    entry = registry.task("lm-gemma3")
    plain_cls = type("Plain", (entry.cls,), {"bos_first": False})
    params = {"window": 16, "eval_windows": 3, "calibration_window": 8, "calibration_windows": 4}
    tasks = []
    for cls in (entry.cls, plain_cls):
        task = cls(cls.Params(**params))
        task._tokenizer = _Tokenizer()
        tasks.append(task)
    bos, plain = tasks
    ids = bos.eval_ids()
    assert ids.shape == (3, 16) and (ids[:, 0] == 1).all()
    assert torch.equal(ids[:, 1:].flatten(), plain.eval_ids().flatten()[: 3 * 15])
    calib = bos.calibration_windows(0)
    assert calib.shape == (4, 8) and (calib[:, 0] == 1).all() and not (plain.calibration_windows(0)[:, 0] == 1).all()
