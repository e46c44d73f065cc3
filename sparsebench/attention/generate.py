"""Greedy generation with one phase sparse: how the RULER-style tasks are scored.

The model answers every prompt with its own greedy continuation (never
teacher-forced). Which rows are sparse depends on the phase (The Sparse
Frontier's split of prefill and decode):

- ``prefill``: the whole prompt runs in the sparse prefill phase; the first
  answer token is the argmax of its last row; every later token is a dense
  decode step over the (sparsely computed) cache.
- ``decode``: the prompt but its last token runs densely (taken from the
  shared prompt cache when the task allows it); the last prompt token and
  every generated token are sparse decode rows, so every answer token,
  the first included, is predicted by a sparse decode row.

Generation stops at EOS, at ``max_new_tokens``, or once every answer string is
in the decoded text: the score (share of answers present) can only grow with
more text, so stopping then changes no score and saves the decode steps.
"""

from __future__ import annotations

import contextlib

import torch

from sparsebench.attention.ruler import string_match_all
from sparsebench.lm.models import kv_cache, with_cache


def greedy_answer(model, session, ids: torch.Tensor, phase: str | None, answers: list[str], tokenizer,
                  max_new_tokens: int, source: dict | None = None, origins: list | None = None) -> str:
    """The decoded greedy continuation of the prompt ``ids`` (1, P) with ``phase`` sparse (None: all dense)."""
    from sparsebench.attention.prompt_cache import dense_prompt

    ids = ids.to(model.device)
    prompt_len = ids.shape[1]
    sparse = (lambda p: session.sparse(p) if phase == p else contextlib.nullcontext())
    if phase == "decode":
        if source is not None:
            past, origin = dense_prompt(model, session, ids, prompt_len - 1, source)
            if origins is not None:
                origins.append(origin)
        else:
            past = kv_cache(model(ids[:, :-1], use_cache=True, logits_to_keep=1))
        with sparse("decode"):
            logits = model(ids[:, -1:], **with_cache(model, past), use_cache=True)
    else:
        with sparse("prefill"):
            logits = model(ids, use_cache=True, logits_to_keep=1)
    eos = tokenizer.eos_token_id
    out: list[int] = []
    while True:
        past = kv_cache(logits)
        nxt = int(logits.logits[0, -1].argmax())
        if nxt == eos:
            break
        out.append(nxt)
        text = tokenizer.decode(out)
        if len(out) >= max_new_tokens or string_match_all(text, answers) == 1.0:
            return text
        with sparse("decode"):
            logits = model(torch.tensor([[nxt]], device=model.device), **with_cache(model, past), use_cache=True)
    return tokenizer.decode(out)


def score_phase(task, model, session, phase: str | None, source: dict | None = None,
                origins: list | None = None, log=None) -> tuple[dict, dict]:
    """(metrics, samples) of ``task``'s samples with ``phase`` sparse: ``accuracy`` (mean string_match_all)
    and ``chance`` (mean score of a guess, see sparsebench.attention.ruler); samples per CONTRACT.md."""
    scores, ids_ = [], []
    for sample in task.ruler_samples():
        text = greedy_answer(model, session, torch.tensor([sample.ids]), phase, sample.answers, task.tokenizer,
                             task.max_new_tokens(), source, origins)
        scores.append(round(string_match_all(text, sample.answers), 6))
        ids_.append(sample.id)
        if log is not None:
            log(f"{phase or 'dense'} {sample.id}: {scores[-1]:.2f} {text!r} (answers {sample.answers})")
    acc = sum(scores) / len(scores)
    chance = sum(s.chance for s in task.ruler_samples()) / len(scores)
    samples = {"unit": "sample", "statistic": "mean", "values": [float(s) for s in scores], "ids": ids_}
    return {"accuracy": acc, "chance": chance}, samples
