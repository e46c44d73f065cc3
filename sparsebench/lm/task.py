"""The shared base of causal-LM tasks: token streams, perplexity, calibration windows.

Perplexity follows the reference pruning papers' evaluation: the evaluation
token stream is cut into non-overlapping windows of ``window`` tokens, each
window is scored on its own, and ppl = exp(mean next-token NLL over all
predicted positions). Calibration windows are drawn at random positions (seeded)
from a disjoint calibration stream.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from sparsebench.imports import causal_lm_classes
from sparsebench.lm.token_cache import cached_token_stream, tokens_sha256
from sparsebench.params import OMIT_DEFAULT
from sparsebench.task import JobResources, Metric, Task


def token_stream(texts, tokenizer, n_tokens: int, batch: int = 64, used: list | None = None) -> torch.Tensor:
    """The first ``n_tokens`` tokens of ``texts`` (each followed by EOS), or fail if too short.

    Texts are tokenized in batches: a fast tokenizer encodes a batch on all cores (a 128 x 2048
    calibration pool, 2 M tokens, took seconds one text at a time); each text is still encoded on its
    own, so the ids are those of one call per text. Batches grow from one text up to ``batch``: a job
    that needs a few thousand tokens (one stdlib file holds that many) encodes one file, not 64 of them
    (about 1 s of every job's start-up). ``used`` (a list) receives how many texts the ids came from."""
    eos = tokenizer.eos_token_id
    encode = _batch_encoder(tokenizer)
    ids: list[int] = []
    texts = iter(texts)
    size, count = 1, 0
    while chunk := list(itertools.islice(texts, size)):
        size = min(2 * size, batch)
        for encoded in encode(chunk):
            count += 1
            ids.extend(encoded)
            if eos is not None:
                ids.append(eos)
            if len(ids) >= n_tokens:
                if used is not None:
                    used.append(count)
                return torch.tensor(ids[:n_tokens], dtype=torch.long)
    raise ValueError(f"the text source has only {len(ids)} tokens; {n_tokens} are needed")


def _batch_encoder(tokenizer):
    """``texts -> [ids per text]``: a fast tokenizer's Rust backend without the offsets and the Python
    encoding objects the wrapper builds (~0.7x the time), as long as it gives the wrapper's ids on the first
    text it sees; otherwise (a slow tokenizer, a wrapper that adds its own processing) the wrapper."""
    def wrapper(chunk):
        return tokenizer(chunk, add_special_tokens=False)["input_ids"]

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not getattr(tokenizer, "is_fast", False) or not hasattr(backend, "encode_batch_fast"):
        return wrapper
    agrees: list[bool] = []  # decided on the first text seen

    def fast(chunk):
        if not agrees:
            first = backend.encode_batch_fast(chunk[:1], add_special_tokens=False)[0].ids
            agrees.append(first == wrapper(chunk[:1])[0])
        if not agrees[0]:
            return wrapper(chunk)
        return [e.ids for e in backend.encode_batch_fast(chunk, add_special_tokens=False)]

    return fast


class LanguageModelTask(Task):
    families: ClassVar[tuple[str, ...]] = ("pruning", "activation_sparsity")
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("perplexity", higher_is_better=False, description="exp(mean NLL) on held-out windows"),
    )
    # measured: a 135M model at window 128 peaks at 2.3 GB; window 512 x batch 4 adds ~1 GB of logits
    resources: ClassVar[JobResources] = JobResources(mem_mb=6000, runtime=60)
    # The model was trained with its BOS token first and is far off without it (Gemma: perplexity 14.8
    # instead of 6.9 on the same stdlib windows): every evaluation and calibration window then starts with
    # BOS followed by window - 1 text tokens.
    bos_first: ClassVar[bool] = False

    @dataclass
    class Params:
        window: int = 512  # tokens per evaluation window
        eval_windows: int = 32  # number of non-overlapping evaluation windows
        calibration_window: int = 512  # tokens per calibration window
        calibration_windows: int = 32  # number of calibration windows
        batch_size: int = 4
        # zero-shot tasks scored through lm-eval after perplexity (sparsebench.lm.zeroshot); empty: none.
        # These four stay out of the run id while at their defaults.
        zeroshot: list[str] = field(default_factory=list, metadata=OMIT_DEFAULT)
        zeroshot_limit: int = field(default=0, metadata=OMIT_DEFAULT)  # items per task (seeded subset); 0: all
        zeroshot_batch_size: int = field(default=16, metadata=OMIT_DEFAULT)
        zeroshot_data: str | None = field(default=None, metadata=OMIT_DEFAULT)  # DIR/<task>/<split>.jsonl

        def check(self):
            for key in ("window", "eval_windows", "calibration_window", "calibration_windows", "batch_size",
                        "zeroshot_batch_size"):
                if getattr(self, key) < 1:
                    raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
            if self.zeroshot_limit < 0:
                raise ValueError(f"zeroshot_limit={self.zeroshot_limit} must be >= 0 (0: every item)")
            from sparsebench.lm.zeroshot import check_tasks

            check_tasks(self.zeroshot, self.zeroshot_data)

    # -- what a concrete task provides ----------------------------------------
    def model_source(self):
        raise NotImplementedError

    def text_source(self):
        raise NotImplementedError

    def limit_problems(self) -> list[str]:
        """Windows longer than the model's context, or more evaluation tokens than the text has."""
        p, out = self.params, []
        context = getattr(self.model_source(), "context_length", lambda: None)()
        for key in ("window", "calibration_window"):  # subclasses (long-context tasks) may have other params
            if context and hasattr(p, key) and getattr(p, key) > context:
                out.append(f"{key}={getattr(p, key)}: longer than the model's context; allowed: 1 to {context}")
        max_tokens = getattr(self.text_source(), "max_tokens", None)
        if max_tokens is not None and hasattr(p, "window") and hasattr(p, "eval_windows"):
            have = max_tokens("evaluation")
            if p.window * p.eval_windows > have:
                out.append(f"eval_windows={p.eval_windows}: {p.eval_windows} x window {p.window} tokens exceed the "
                           f"evaluation text (at most {have} tokens); allowed: 1 to {max(1, have // p.window)}")
        return out

    # -- shared machinery ------------------------------------------------------
    def __init__(self, params=None):
        super().__init__(params)
        self._tokenizer = None
        self._eval_ids = None
        self._calib_pool = None
        self.calibration_pool_cache: str | None = None

    def prepare(self) -> dict:
        self.model_source().prepare()
        return {"model": self.model_source().describe(), "text": self.text_source().describe()}

    def load_model(self, dtype: torch.dtype = torch.float32) -> nn.Module:
        """The model on the host in ``dtype`` (loaded in it directly, not via a float32 copy). Where the
        time went is left in ``load_parts`` (s): importing transformers, preparing the source (a GGUF's
        dequantised cache: built once per machine, then found), and from_pretrained with the tokenizer."""
        t0 = time.perf_counter()
        causal_lm_classes()  # the import, timed apart (the source's load imports the same modules again)
        t1 = time.perf_counter()
        source = self.model_source()
        if hasattr(source, "prepare"):
            source.prepare()  # the source's load calls it again: found ready, free
        t2 = time.perf_counter()
        model, tok = source.load(dtype)
        self.load_parts = {"import_transformers": t1 - t0, "prepare_source": t2 - t1,
                           "from_pretrained": time.perf_counter() - t2}
        self._tokenizer = tok
        return model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            _, self._tokenizer = self.model_source().load()
        return self._tokenizer

    def decoder_blocks(self, model: nn.Module) -> nn.ModuleList:
        """The model's transformer blocks, in order (llama/mistral/qwen and OPT layouts)."""
        inner = getattr(model, "model", model)
        if hasattr(inner, "layers"):
            return inner.layers
        if hasattr(inner, "decoder") and hasattr(inner.decoder, "layers"):
            return inner.decoder.layers
        raise TypeError(f"{type(model).__name__}: cannot find its decoder blocks (llama- or OPT-style expected)")

    def prunable_layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """Every nn.Linear inside the decoder blocks (embeddings and the LM head stay dense, as in the papers)."""
        blocks = self.decoder_blocks(model)
        prefix = next(name for name, mod in model.named_modules() if mod is blocks)
        return {
            f"{prefix}.{name}": mod
            for name, mod in blocks.named_modules()
            if isinstance(mod, nn.Linear)
        }

    def eval_ids(self) -> torch.Tensor:
        """(eval_windows, window) token ids of the evaluation split."""
        if self._eval_ids is None:
            p = self.params
            text = p.window - 1 if self.bos_first else p.window
            stream = token_stream(self.text_source().texts("evaluation"), self.tokenizer, text * p.eval_windows)
            self._eval_ids = self._with_bos(stream.reshape(p.eval_windows, text))
        return self._eval_ids

    def _with_bos(self, windows: torch.Tensor) -> torch.Tensor:
        if not self.bos_first:
            return windows
        bos = self.tokenizer.bos_token_id
        if bos is None:
            raise ValueError(f"{self.name}: bos_first is set but the tokenizer has no BOS token")
        return torch.cat([torch.full((windows.shape[0], 1), bos, dtype=windows.dtype), windows], dim=1)

    def calibration_windows(self, seed: int) -> torch.Tensor:
        """(calibration_windows, calibration_window) ids at seeded random positions of the calibration split."""
        p = self.params
        if self._calib_pool is None:
            pool = max(8 * p.calibration_window * p.calibration_windows, 4 * p.calibration_window)
            source = self.text_source()
            # "hit" | "miss" | "off": whether the pool's ids came from the on-disk cache (recorded by pruning)
            self._calib_pool, self.calibration_pool_cache = cached_token_stream(
                token_stream, lambda: source.texts("calibration"), self.tokenizer, pool, source.describe(),
                "calibration")
        g = torch.Generator().manual_seed(seed)
        text = p.calibration_window - 1 if self.bos_first else p.calibration_window
        starts = torch.randint(0, len(self._calib_pool) - text, (p.calibration_windows,), generator=g)
        return self._with_bos(torch.stack([self._calib_pool[s : s + text] for s in starts.tolist()]))

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self.evaluate_with_samples(model)[0]

    @torch.no_grad()
    def evaluate_with_samples(self, model: nn.Module) -> tuple[dict[str, float], dict]:
        """Perplexity over all windows, and each window's mean NLL as its sample (windows have equal
        token counts, so exp(mean of the window NLLs) is the perplexity)."""
        from sparsebench.progress import progress
        from sparsebench.stats import samples_entry

        ids = self.eval_ids()
        device = next(model.parameters()).device
        window_nll = []
        bar = progress(total=ids.shape[0], desc="perplexity", unit="window")
        for start in range(0, ids.shape[0], self.params.batch_size):
            batch = ids[start : start + self.params.batch_size].to(device)
            bar.update(batch.shape[0])
            logits = model(batch, use_cache=False).logits
            nll = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction="none"
            )
            window_nll.append(nll.double().cpu().reshape(batch.shape[0], -1).sum(dim=1))
        bar.close()
        sums = torch.cat(window_nll)
        count = ids.shape[0] * (ids.shape[1] - 1)
        mean_nll = (sums.sum() / count).item()
        metrics = {"perplexity": float(torch.exp(torch.tensor(mean_nll, dtype=torch.float64))), "nll": mean_nll}
        per_window = (sums / (ids.shape[1] - 1)).tolist()
        ids_ = [f"w{i}" for i in range(len(per_window))]
        samples = {"perplexity": samples_entry(per_window, "window", "exp_mean", ids_),
                   "nll": samples_entry(per_window, "window", "mean", ids_)}
        return metrics, samples

    def zeroshot(self, model: nn.Module) -> dict:
        """lm-eval zero-shot accuracy of the live ``model`` on the configured tasks (``{}`` when none are)."""
        p = self.params
        if not p.zeroshot:
            return {}
        from sparsebench.lm import zeroshot

        return zeroshot.evaluate(model, self.tokenizer, p.zeroshot, limit=p.zeroshot_limit,
                                 batch_size=p.zeroshot_batch_size, data_dir=p.zeroshot_data)

    def data_info(self) -> dict:
        ids = self.eval_ids()
        return {
            "text": self.text_source().describe(),
            "model": self.model_source().describe(),
            "eval_tokens": int(ids.numel()),
            "eval_windows": int(ids.shape[0]),
            "window": int(ids.shape[1]),
            "eval_tokens_sha256": tokens_sha256(ids),
        }
