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

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from sparsebench.lm import LanguageModelTask
from sparsebench.lm.task import tokens_sha256
from sparsebench.params import OMIT_DEFAULT
from sparsebench.task import Metric, check_threads


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
        # how the sparse rows run: "reference" (masked dense attention), "flex" (FlexAttention on a BlockMask
        # of the method's blocks, prefill timed against SDPA), "auto" (flex where the hardware has it)
        executor: str = "auto"
        # the flex executor's block-sparse kernel: "flex" (FlexAttention) or "triton" (ours, whole tiles under
        # the causal rule; a method whose pattern cuts tiles in part is refused with the allowed value)
        attention_kernel: str = field(default="flex", metadata=OMIT_DEFAULT)
        threads: int = 0  # intra-op threads of a job; 0: the hardware profile's (every core it may use)
        # reuse the decode phase's dense prompt across jobs (sparsebench.attention.prompt_cache); false: recompute
        prompt_cache: bool = True

        def check(self):
            for key in ("seq_len", "sequences", "continuation", "query_block", "batch_size"):
                if getattr(self, key) < 1:
                    raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
            check_threads(self.threads)
            if self.executor not in ("auto", "reference", "flex"):
                raise ValueError(f"executor={self.executor!r}; allowed: auto, reference, flex")
            if self.attention_kernel not in ("flex", "triton"):
                raise ValueError(f"attention_kernel={self.attention_kernel!r}; allowed: flex, triton")
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

    def continuation_samples(self, logits: list[torch.Tensor]) -> dict:
        """Per-unit values of the metrics of :meth:`score_continuations` (``samples``, CONTRACT); default none."""
        return {}

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
        return self.evaluate_with_samples(model)[0]

    @torch.no_grad()
    def evaluate_with_samples(self, model: nn.Module) -> tuple[dict[str, float], dict]:
        _, prompt_len = self.cached_samples()
        logits = [model(ids, use_cache=False).logits[:, prompt_len:-1].float() for ids, _ in self.attention_batches()]
        return self.score_continuations(logits), self.continuation_samples(logits)

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
        Metric("perplexity_prefill", higher_is_better=False,
               description="continuation perplexity after a sparse prompt"),
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

    def continuation_samples(self, logits: list[torch.Tensor]) -> dict:
        """Each scored token's NLL (unit ``token``, ids ``s<sequence>:t<position>``): with one or two
        sequences, tokens are the only units there are; intervals resample them in contiguous blocks."""
        from sparsebench.stats import samples_entry

        lg, tg = torch.cat(logits), self.targets()
        nll = nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), reduction="none")
        ids = [f"s{i}:t{j}" for i in range(tg.shape[0]) for j in range(tg.shape[1])]
        return {"perplexity": samples_entry(nll.double().tolist(), "token", "exp_mean", ids)}


class PasskeyRetrieval(LongContextTask):
    """Passkey retrieval (RULER's single needle) inside real filler text, generated deterministically.

    Sample i hides "The pass key is NNNNN. Remember it. NNNNN is the pass key."
    (a comment line, since the filler is source code) at depth (i + 0.5) /
    samples of a ``seq_len``-token context cut from the evaluation text at a
    sample-specific offset, and ends with "What is the pass key? The pass key
    is". The key comes from a generator seeded with ``seed`` and i. The answer
    (a space and ``digits`` digits, one token each) is scored teacher-forced:
    a sample is correct when every answer token is the model's argmax, which
    is exactly what greedy decoding would produce.
    """

    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("accuracy_decode", higher_is_better=True, description="passkeys retrieved, sparse decode rows"),
        Metric("accuracy_prefill", higher_is_better=True, description="passkeys retrieved after a sparse prompt"),
    )
    NEEDLE = "\n# The pass key is {key}. Remember it. {key} is the pass key.\n"
    QUESTION = "\n# What is the pass key? The pass key is"

    @dataclass
    class Params(LongContextTask.Params):
        sequences: int = 8  # samples (depths spread evenly over the context)
        digits: int = 5
        seed: int = 1234
        continuation: int = 2  # set from the answer length; kept for the shared contract
        batch_size: int = 4

    def samples(self) -> tuple[torch.Tensor, int]:
        p = self.params
        tok = self.tokenizer

        def enc(text):
            return tok(text, add_special_tokens=False)["input_ids"]

        from sparsebench.lm.task import token_stream

        stream = token_stream(self.text_source().texts("evaluation"), tok, 2 * p.seq_len + p.sequences * 97)
        rows, answer_len = [], None
        for i in range(p.sequences):
            g = torch.Generator().manual_seed(p.seed * 1000 + i)
            key = "".join(str(d) for d in torch.randint(0, 10, (p.digits,), generator=g).tolist())
            needle, question, answer = enc(self.NEEDLE.format(key=key)), enc(self.QUESTION), enc(" " + key)
            answer_len = len(answer)
            filler_len = p.seq_len - len(needle) - len(question) - len(answer)
            filler = stream[i * 97 : i * 97 + filler_len].tolist()
            depth = int(filler_len * (i + 0.5) / p.sequences)
            ids = filler[:depth] + needle + filler[depth:] + question + answer
            rows.append(torch.tensor(ids, dtype=torch.long))
        # the continuation is the question's last token and the answer: every answer prediction is a continuation row
        return torch.stack(rows), p.seq_len - answer_len - 1

    def score_continuations(self, logits: list[torch.Tensor]) -> dict[str, float]:
        hits = torch.cat(logits).argmax(dim=-1) == self.targets()
        return {"accuracy": float(hits.all(dim=-1).double().mean()), "token_accuracy": float(hits.double().mean())}

    def continuation_samples(self, logits: list[torch.Tensor]) -> dict:
        """Per passkey sample: retrieved (0/1) and the share of its answer tokens predicted."""
        from sparsebench.stats import samples_entry

        hits = torch.cat(logits).argmax(dim=-1) == self.targets()
        ids = [f"passkey{i}" for i in range(hits.shape[0])]
        return {"accuracy": samples_entry(hits.all(dim=-1).double().tolist(), "sample", "mean", ids),
                "token_accuracy": samples_entry(hits.double().mean(dim=-1).tolist(), "sample", "mean", ids)}
