"""The decode phase's dense prompt, computed once per task and machine and shared by every job.

In the decode phase the prompt is processed with *dense* attention, so its key/
value cache (and the last queries of every layer, which decode-phase methods
such as vertical-slash estimate their pattern from) is the same for every
method and budget of a task. A 2k-token job spends about a third of its time
recomputing it; here it is computed by the first job that needs it and stored
in the sparsebench cache (``<cache>/attention``), keyed by everything that
determines it: the model, the token ids, the prompt length, dtype, device,
intra-op threads (float sums depend on them), the torch and transformers
versions, how many queries the session keeps, and :data:`VERSION`. Entries are
built under a file lock and renamed into place (``sparsebench.cache.build_once``),
so concurrent jobs compute one entry once and never read half of one.

A job records whether it found the entry (``extra.prompt_cache``: ``hit``, or
``stored`` for the job that built it); the numbers are the same either way
(tests/test_attention_prompt_cache.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from sparsebench.lm.models import kv_cache

VERSION = 1  # bump when what is stored changes: older entries are then not reused
CACHE_DIR: Path | None = None  # a directory to use instead of <sparsebench cache>/attention (tests)


def _key(model, ids: torch.Tensor, prompt_len: int, source: dict, keep_queries: int) -> dict:
    import transformers

    from sparsebench.lm.task import tokens_sha256

    param = next(model.parameters())
    return {"version": VERSION, "model": source, "ids": tokens_sha256(ids[:, :prompt_len].cpu()),
            "shape": list(ids.shape), "prompt_len": prompt_len, "dtype": str(param.dtype),
            "device": param.device.type, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__, "keep_queries": keep_queries}


def _compute(model, session, ids: torch.Tensor, prompt_len: int) -> dict:
    """Dense forward of the prompt (outside any sparse phase): its KV cache and each layer's last queries."""
    out = model(ids[:, :prompt_len], use_cache=True, logits_to_keep=1)
    # clone: a slice saved as it is would store its whole underlying tensor
    layers = [(k.detach().cpu().clone(), v.detach().cpu().clone()) for k, v, *_ in kv_cache(out)]
    queries = {layer: q.cpu().clone() for layer, q in session.recent_queries().items()}
    return {"kv": layers, "queries": queries}


def dense_prompt(model, session, ids: torch.Tensor, prompt_len: int, source: dict) -> tuple[object, str]:
    """The dense prompt's KV cache (a transformers ``DynamicCache``), with ``session``'s remembered queries
    set as if the prompt had just run; and ``"hit"`` or ``"stored"``.

    ``source``: what the model is (the task's model description), part of the cache key.
    """
    from transformers import DynamicCache

    from sparsebench.cache import build_keyed, cache_dir

    entry, origin = build_keyed(CACHE_DIR or cache_dir() / "attention", "dense-prompt",
                                _key(model, ids, prompt_len, source, session.keep_queries),
                                lambda tmp: torch.save(_compute(model, session, ids, prompt_len), tmp / "prompt.pt"))
    data = torch.load(entry / "prompt.pt", map_location=ids.device, weights_only=True)
    cache = DynamicCache(ddp_cache_data=[(k.to(ids.device), v.to(ids.device)) for k, v in data["kv"]],
                         config=model.config)
    session.restore_queries(data["queries"])
    return cache, origin
