"""Text and model sources: the offline stdlib split, and the hub / datasets loaders on local fixtures."""

import math
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from sparsebench.lm import HFDatasetText, HubModel, LanguageModelTask, StdlibText
from sparsebench.lm.task import token_stream


def test_stdlib_split_is_disjoint_deterministic_and_mostly_calibration():
    src = StdlibText()
    cal, ev = src.files("calibration"), src.files("evaluation")
    assert cal and ev and not set(cal) & set(ev)
    assert 0.05 < len(ev) / (len(ev) + len(cal)) < 0.2
    assert src.files("evaluation") == ev
    assert all("site-packages" not in p.parts for p in cal + ev)


def test_stdlib_split_files_are_every_py_file_outside_skipped_directories(tmp_path):
    import hashlib

    from sparsebench.lm.text import _SKIP_DIRS

    def by_rglob(root, split):  # the definition: every *.py under root, none under a skipped directory
        out = []
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if any(part in _SKIP_DIRS for part in rel.parts[:-1]):
                continue
            if (hashlib.sha256(rel.as_posix().encode()).digest()[0] < 26) == (split == "evaluation"):
                out.append(path)
        return out

    for rel in ("a.py", "b.txt", "pkg/c.py", "pkg/deep/d.py", "site-packages/e.py", "pkg/tests/f.py",
                "Z.py", "pkg/__pycache__/g.py", "x/y/z/h.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("pass\n")
    (tmp_path / "linked").symlink_to(tmp_path / "pkg", target_is_directory=True)  # not entered, as rglob
    for root in (tmp_path, StdlibText()._root()):
        src = StdlibText(root=str(root))
        for split in ("calibration", "evaluation"):
            assert src.files(split) == by_rglob(root, split)


@pytest.fixture(scope="module")
def hub_fixture(tmp_path_factory):
    """A tiny llama checkpoint and tokenizer in hub layout, plus WikiText-like parquet files."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("hub")
    corpus = [f"line {i}: the quick brown fox jumps over the lazy dog {i % 7}" for i in range(400)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "</s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")
    model_dir = d / "tiny-llama"
    fast.save_pretrained(model_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    LlamaForCausalLM(cfg).save_pretrained(model_dir)
    pd.DataFrame({"text": corpus[:300]}).to_parquet(d / "train.parquet")
    pd.DataFrame({"text": corpus[300:]}).to_parquet(d / "test.parquet")
    return model_dir, {"train": str(d / "train.parquet"), "test": str(d / "test.parquet")}


def test_hub_model_loader_reads_a_local_checkpoint(hub_fixture):
    model_dir, _ = hub_fixture
    model, tok = HubModel(str(model_dir)).load()
    assert model.config.num_hidden_layers == 2 and tok.eos_token == "</s>"


def test_dataset_text_loader_reads_local_parquet_splits(hub_fixture):
    _, files = hub_fixture
    src = HFDatasetText("parquet", None, "train", "test", data_files=files)
    ev = next(src.texts("evaluation"))
    assert ev.startswith("line 300:") and "line 299:" not in ev
    assert "line 0:" in next(src.texts("calibration"))


def test_lm_task_on_hub_fixture_gives_finite_perplexity_and_disjoint_calibration(hub_fixture):
    model_dir, files = hub_fixture

    class FixtureTask(LanguageModelTask):
        name = "lm-fixture"

        @dataclass
        class Params(LanguageModelTask.Params):
            window: int = 16
            eval_windows: int = 3
            calibration_window: int = 16
            calibration_windows: int = 2

        def model_source(self):
            return HubModel(str(model_dir))

        def text_source(self):
            return HFDatasetText("parquet", None, "train", "test", data_files=files)

    task = FixtureTask()
    model = task.load_model()
    ppl = task.evaluate(model)["perplexity"]
    assert 1 < ppl < 10 * len(task.tokenizer)  # a random tiny model: near-uniform, but finite
    metrics, samples = task.evaluate_with_samples(model)
    per_window = samples["perplexity"]  # per-window mean NLL: exp(their mean) is the perplexity
    assert per_window["unit"] == "window" and per_window["statistic"] == "exp_mean"
    assert per_window["ids"] == ["w0", "w1", "w2"] and metrics["perplexity"] == pytest.approx(ppl)
    assert math.exp(sum(per_window["values"]) / 3) == pytest.approx(ppl, rel=1e-5)
    assert len(task.prunable_layers(model)) == 2 * 7
    cal = task.calibration_windows(seed=0)
    assert cal.shape == (2, 16) and torch.equal(cal, task.calibration_windows(seed=0))
    assert not torch.equal(cal, task.calibration_windows(seed=1))


def test_token_stream_in_batches_gives_the_ids_of_one_call_per_text(hub_fixture):
    model_dir, _ = hub_fixture
    _, tok = HubModel(str(model_dir)).load()
    texts = [f"line {i}: the quick brown fox " * (1 + i % 5) for i in range(150)]
    one_by_one = []
    for text in texts:
        one_by_one += tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    for n in (1, 37, len(one_by_one)):
        for batch in (1, 7, 64):
            assert token_stream(iter(texts), tok, n, batch=batch).tolist() == one_by_one[:n]


def test_token_stream_fails_clearly_when_text_is_too_short(hub_fixture):
    model_dir, _ = hub_fixture
    _, tok = HubModel(str(model_dir)).load()
    with pytest.raises(ValueError, match="only"):
        token_stream(["a few words"], tok, 10_000)


def test_the_fast_backend_encoder_gives_the_wrappers_ids_and_falls_back_when_it_would_not(hub_fixture):
    from types import SimpleNamespace

    from sparsebench.lm.task import _batch_encoder

    model_dir, _ = hub_fixture
    _, tok = HubModel(str(model_dir)).load()
    texts = [f"def f{i}(x):\n    return x * {i}  # the quick brown fox" for i in range(20)]
    want = tok(texts, add_special_tokens=False)["input_ids"]
    assert _batch_encoder(tok)(texts) == want

    class Differs:  # a wrapper that post-processes what its backend gives
        is_fast, eos_token_id = True, tok.eos_token_id
        backend_tokenizer = SimpleNamespace(
            encode_batch_fast=lambda chunk, add_special_tokens: [SimpleNamespace(ids=[7]) for _ in chunk])

        def __call__(self, chunk, add_special_tokens=False):
            return tok(chunk, add_special_tokens=add_special_tokens)

    assert _batch_encoder(Differs())(texts) == want
    assert token_stream(iter(texts), Differs(), 50).tolist() == token_stream(iter(texts), tok, 50).tolist()
