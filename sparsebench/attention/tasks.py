"""Long-context tasks for sparse attention: samples split into a prompt and a scored continuation.

A long-context task hands the sparse-attention family equal-length token
sequences with one prompt length (``attention_batches``) and turns the
logits of the continuation rows into metrics (``score_continuations``). The
rows of the continuation predict ``ids[:, prompt_len + 1:]``: the first
continuation token is given, so every scored prediction comes from a row of
the phase being measured (decode rows in the decode phase).

:class:`LongContextPerplexity`: the first ``seq_len`` tokens of the first
``sequences`` evaluation files (CPython stdlib by default) that are at least
that long, so the context is one document; perplexity on the last
``continuation`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from sparsebench.lm import LanguageModelTask
from sparsebench.lm.task import tokens_sha256
from sparsebench.task import Metric


class LongContextTask(LanguageModelTask):
    """Shared machinery; subclasses build ``samples()`` and define ``score_continuations``."""

    families: ClassVar[tuple[str, ...]] = ("sparse_attention",)

    @dataclass
    class Params:
        seq_len: int = 2048  # tokens per sequence (prompt + continuation)
        sequences: int = 2
        continuation: int = 256  # scored tail; the rest is the prompt
        query_block: int = 64  # rows sharing one key selection in sparse prefill
        batch_size: int = 1

        def check(self):
            for key in ("seq_len", "sequences", "continuation", "query_block", "batch_size"):
                if getattr(self, key) < 1:
                    raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
            if not 2 <= self.continuation < self.seq_len:
                raise ValueError(f"continuation={self.continuation} must be in [2, seq_len={self.seq_len})")

    def __init__(self, params=None):
        super().__init__(params)
        self._samples = None

    def samples(self) -> tuple[torch.Tensor, int]:
        """(sequences, seq_len) ids and the prompt length."""
        raise NotImplementedError

    def score_continuations(self, logits: list[torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def cached_samples(self) -> tuple[torch.Tensor, int]:
        if self._samples is None:
            self._samples = self.samples()
        return self._samples

    def attention_batches(self):
        ids, prompt_len = self.cached_samples()
        for start in range(0, ids.shape[0], self.params.batch_size):
            yield ids[start : start + self.params.batch_size], prompt_len

    def targets(self) -> torch.Tensor:
        ids, prompt_len = self.cached_samples()
        return ids[:, prompt_len + 1 :]

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Dense scores (whatever attention the model is set to), one forward per batch."""
        _, prompt_len = self.cached_samples()
        logits = [model(ids, use_cache=False).logits[:, prompt_len:-1].float() for ids, _ in self.attention_batches()]
        return self.score_continuations(logits)

    def data_info(self) -> dict:
        ids, prompt_len = self.cached_samples()
        return {
            "text": self.text_source().describe(),
            "model": self.model_source().describe(),
            "sequences": int(ids.shape[0]),
            "seq_len": int(ids.shape[1]),
            "prompt_len": int(prompt_len),
            "eval_tokens_sha256": tokens_sha256(ids),
        }


class LongContextPerplexity(LongContextTask):
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("perplexity_decode", higher_is_better=False, description="continuation perplexity, sparse decode rows"),
        Metric("perplexity_prefill", higher_is_better=False, description="continuation perplexity after a sparse prompt"),
    )

    def samples(self) -> tuple[torch.Tensor, int]:
        p = self.params
        tok = self.tokenizer
        rows = []
        for text in self.text_source().texts("evaluation"):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if len(ids) >= p.seq_len:
                rows.append(torch.tensor(ids[: p.seq_len], dtype=torch.long))
                if len(rows) == p.sequences:
                    return torch.stack(rows), p.seq_len - p.continuation
        raise ValueError(f"the evaluation text has only {len(rows)} files of >= {p.seq_len} tokens; "
                         f"sequences={p.sequences} are needed")

    def score_continuations(self, logits: list[torch.Tensor]) -> dict[str, float]:
        lg = torch.cat(logits)
        nll = nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), self.targets().reshape(-1), reduction="mean")
        return {"perplexity": float(torch.exp(nll.double())), "nll": float(nll)}
