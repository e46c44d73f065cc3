"""A content-keyed on-disk cache of tokenized text pools (the calibration pool: 2 M tokens at 128 x 2048).

A job draws its calibration windows from the first N tokens of its calibration text; tokenizing them took
1.3 s of a 7B Wanda job on an H200 whose pruning took 3.9 s (the reference pipelines are handed token
ids). The pool depends only on the texts it was cut from, the tokenizer and N, so it is cached under
``$SPARSEBENCH_CACHE/token_pools/``:

- the entry's name digests the text source's description, the split, N, the tokenizer (its files' content,
  memoised per file, or its serialisation) and the transformers/tokenizers versions;
- the entry records how many texts the pool consumed and the SHA-256 of those texts: a lookup re-reads
  and re-hashes exactly them (cheap next to tokenizing) and misses on any change, so an edited text file,
  even one that does not change the source's description, is never served stale ids;
- the ids are stored as ``.npy`` (no pickle) with their SHA-256 in a ``.json`` written after them, both by
  atomic rename; a lookup checks that hash too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from sparsebench.cache import cache_dir, key_digest
from sparsebench.lm.local import file_sha256

FORMAT = 1
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja")


def tokens_sha256(ids: torch.Tensor) -> str:
    return hashlib.sha256(ids.to(torch.int64).numpy().tobytes()).hexdigest()


def _text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def tokenizer_digest(tokenizer) -> str | None:
    """The tokenizer by content: the tokenizer files of the directory it was loaded from, else a fast
    tokenizer's serialisation; None (no caching) for anything else."""
    import tokenizers
    import transformers

    h = hashlib.sha256(f"{type(tokenizer).__name__}|{transformers.__version__}|{tokenizers.__version__}|"
                       f"{tokenizer.eos_token_id}".encode())
    d = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
    files = [d / n for n in TOKENIZER_FILES if d.is_dir() and (d / n).is_file()]
    if files:
        for f in files:
            h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    elif getattr(tokenizer, "is_fast", False) and hasattr(tokenizer, "backend_tokenizer"):
        h.update(tokenizer.backend_tokenizer.to_str().encode())
    else:
        return None
    return h.hexdigest()


def pool_path(key: dict) -> Path:
    return cache_dir() / "token_pools" / key_digest({"format": FORMAT, **key})


def _lookup(entry: Path, texts: Iterable[str], n_tokens: int) -> torch.Tensor | None:
    meta_file, ids_file = entry.with_suffix(".json"), entry.with_suffix(".npy")
    if not meta_file.is_file() or not ids_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        h, n = hashlib.sha256(), 0
        if meta["texts"] > 0:
            for text in texts:
                h.update(_text_digest(text))
                n += 1
                if n == meta["texts"]:
                    break
        if n != meta["texts"] or h.hexdigest() != meta["texts_sha256"] or meta["tokens"] != n_tokens:
            return None
        ids = torch.from_numpy(np.load(ids_file, allow_pickle=False).astype(np.int64))
    except (OSError, ValueError, KeyError):
        return None
    return ids if len(ids) == n_tokens and tokens_sha256(ids) == meta["tokens_sha256"] else None


def _store(entry: Path, ids: torch.Tensor, texts: int, texts_sha256: str) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    small = ids.numpy().astype(np.int32) if int(ids.max()) < 2**31 else ids.numpy()
    tmp = entry.parent / f".{entry.name}.{os.getpid()}"
    np.save(f"{tmp}.npy", small, allow_pickle=False)
    os.replace(f"{tmp}.npy", entry.with_suffix(".npy"))
    meta = {"format": FORMAT, "tokens": len(ids), "tokens_sha256": tokens_sha256(ids), "texts": texts,
            "texts_sha256": texts_sha256}
    Path(f"{tmp}.json").write_text(json.dumps(meta) + "\n")
    os.replace(f"{tmp}.json", entry.with_suffix(".json"))


def cached_token_stream(token_stream, texts, tokenizer, n_tokens: int, source: dict,
                        split: str) -> tuple[torch.Tensor, str]:
    """``(token_stream(texts(), tokenizer, n_tokens), "hit" | "miss" | "off")``; ``texts`` is a callable
    returning a fresh iterator of the split's texts, ``source`` the text source's description;
    ``token_stream`` (``sparsebench.lm.task.token_stream``) tokenizes on a miss and reports through its
    ``used`` list how many texts it consumed."""
    digest = tokenizer_digest(tokenizer)
    if digest is None:
        return token_stream(texts(), tokenizer, n_tokens), "off"
    entry = pool_path({"text": source, "split": split, "tokens": n_tokens, "tokenizer": digest})
    ids = _lookup(entry, texts(), n_tokens)
    if ids is not None:
        return ids, "hit"
    digests: list[bytes] = []

    def recorded(it: Iterator[str]) -> Iterator[str]:
        for text in it:
            digests.append(_text_digest(text))
            yield text

    used: list[int] = []
    ids = token_stream(recorded(texts()), tokenizer, n_tokens, used=used)
    h = hashlib.sha256()
    for d in digests[: used[0]]:
        h.update(d)
    try:
        _store(entry, ids, used[0], h.hexdigest())
    except OSError:
        pass  # a read-only cache: the job still has its ids
    return ids, "miss"
