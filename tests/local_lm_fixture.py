"""A tiny llama checkpoint and text on local disk (a tokenizer trained here, random weights): lm-local's input."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import torch


def write_text(d: Path, n_files: int = 40) -> Path:
    """``n_files`` .txt files of CPython source (deterministic)."""
    d.mkdir(parents=True, exist_ok=True)
    src = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:n_files]
    for p in src:
        (d / f"{p.stem}.txt").write_text(p.read_text(encoding="utf-8", errors="replace"))
    return d


def write_checkpoint(d: Path, text_dir: Path, layers: int = 2, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<eos>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(p) for p in sorted(text_dir.glob("*.txt"))], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")
    fast.save_pretrained(d)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      eos_token_id=fast.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(d)
    return d


def local_task_params(ckpt: Path, text: Path, **over) -> dict:
    p = {"model": str(ckpt), "text": str(text), "window": 32, "eval_windows": 4, "calibration_window": 32,
         "calibration_windows": 4, "batch_size": 2}
    p.update(over)
    return p


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
