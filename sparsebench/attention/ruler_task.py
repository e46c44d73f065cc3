"""RULER-style long-context tasks for sparse attention, scored on the model's own greedy answers.

A :class:`RulerTask` holds ``sequences`` samples of one kind (``kind``:
niah_single, niah_multikey, niah_multivalue, niah_multiquery, vt, cwe, fwe;
see :mod:`sparsebench.attention.ruler`) whose prompts (with the answer's
room) fill ``seq_len`` tokens. The sparse-attention family scores them with
:func:`sparsebench.attention.generate.score_phase` instead of teacher-forced
logits: ``accuracy_prefill`` (sparse prompt, dense answer) and
``accuracy_decode`` (dense prompt, sparse answer rows), RULER's
string_match_all per sample, recorded per sample under ``samples``.
``chance_{phase}`` is the expected score of a guess among what the prompt
offers (0 where the answers are unseen numbers or names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from sparsebench.attention.ruler import KINDS, MAX_NEW_TOKENS, Generator, prose_texts, vocabulary
from sparsebench.attention.tasks import LongContextTask
from sparsebench.lm.task import token_stream, tokens_sha256
from sparsebench.task import Metric

HAYSTACKS = ("prose", "code")


class RulerTask(LongContextTask):
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("accuracy_decode", higher_is_better=True,
               description="RULER string_match_all of greedy answers, sparse decode rows"),
        Metric("accuracy_prefill", higher_is_better=True,
               description="RULER string_match_all of greedy answers after a sparse prompt"),
    )
    kind: ClassVar[str] = "niah_single"

    @dataclass
    class Params(LongContextTask.Params):
        seq_len: int = 4096  # prompt + the answer's room (max_new_tokens)
        sequences: int = 20  # samples
        seed: int = 1234
        haystack: str = "prose"  # "prose": pydoc_data's reference manual; "code": stdlib evaluation sources
        max_new_tokens: int = 0  # 0: the kind's default (sparsebench.attention.ruler.MAX_NEW_TOKENS)
        continuation: int = 2  # unused: answers are generated (kept for the shared parameter checks)
        # a dense 4k prompt's cache is ~190 MB per sample: off unless a user asks for it
        prompt_cache: bool = False

        def check(self):
            super().check()
            if self.haystack not in HAYSTACKS:
                raise ValueError(f"haystack={self.haystack!r}; allowed: {', '.join(HAYSTACKS)}")
            if self.max_new_tokens < 0:
                raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 0 (0: the kind's default)")
            if self.batch_size != 1:
                raise ValueError(f"batch_size={self.batch_size}; the generated tasks run one prompt at a time (1)")

    def __init__(self, params=None):
        super().__init__(params)
        self._ruler = None

    def max_new_tokens(self) -> int:
        return self.params.max_new_tokens or MAX_NEW_TOKENS[self.kind]

    def haystack_ids(self) -> list[int]:
        p = self.params
        texts = prose_texts() if p.haystack == "prose" else list(self.text_source().texts("evaluation"))
        # the prose is ~100k tokens: enough for any length SmolLM2 takes; code is cut to what 8 samples need
        need = min(sum(len(t) for t in texts) // 5, max(4 * p.seq_len, 65536))
        return token_stream(texts, self.tokenizer, need).tolist()

    def ruler_samples(self):
        if self._ruler is None:
            gen = Generator(self.tokenizer, self.haystack_ids(), vocabulary(prose_texts()), self.params.seed)
            length = self.params.seq_len - self.max_new_tokens()
            self._ruler = gen.samples(self.kind, length, self.params.sequences)
        return self._ruler

    def generation_phase(self, ctx, model, session, phase: str, source=None, origins=None):
        from sparsebench.attention.generate import score_phase

        return score_phase(self, model, session, phase, source, origins, log=ctx.log)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        """Dense greedy answers (whatever attention the model is set to)."""
        from sparsebench.attention.generate import score_phase

        return score_phase(self, model, None, None)[0]

    def data_info(self) -> dict:
        samples = self.ruler_samples()
        flat = torch.tensor([t for s in samples for t in s.ids], dtype=torch.long)
        return {
            "text": ({**self.text_source().describe(), "source": "pydoc_data.topics"} if self.params.haystack == "prose"
                     else self.text_source().describe()),
            "model": self.model_source().describe(),
            "kind": self.kind,
            "sequences": len(samples),
            "seq_len": self.params.seq_len,
            "prompt_tokens": [len(s.ids) for s in samples],
            "max_new_tokens": self.max_new_tokens(),
            "eval_tokens_sha256": tokens_sha256(flat),
        }


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    return kind
