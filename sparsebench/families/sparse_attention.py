"""Sparse attention and KV-cache pruning at inference time: the contract and how one job runs.

A method decides which keys each query row (or query block) attends to:
:meth:`SparseAttentionMethod.decide` returns that decision at the granularity
it was made (``sparsebench.attention.pattern``: whole key blocks per query
block plus local regions, or token-level lines). A KV-cache method may instead
(or also) prune the keys and values themselves
(:meth:`SparseAttentionMethod.compress_kv`). The core
(``sparsebench.attention``) runs the decision inside the real model through
transformers' attention registry, on the reference executor (masked dense
attention) or on FlexAttention (a BlockMask built from the blocks), chosen by
the task parameter ``executor``, and measures density and recall per layer.

Targets: a target's sparsity is ``1 - density`` of the causal query-key pairs
(density 1/4 = ``{sparsity: 0.75}``); see ``sparsebench.attention.budget``.

Each job measures two phases on the same samples, split into a prompt and a
scored continuation (Sparse Frontier's prefill/decode split):
- ``prefill``: the prompt is processed with sparse attention (query blocks
  share their key selection), the continuation attends densely;
- ``decode``: the prompt is processed densely, every continuation row picks
  its own keys from the (dense) cache. That dense prompt is the same for every
  method and budget: it is computed once per task and machine and reused
  (``sparsebench.attention.prompt_cache``; task parameter ``prompt_cache``).
Metrics carry the phase as a suffix: ``perplexity_prefill``, ``density_decode``, ...
``tile_density_{phase}`` is the share of causal kernel tiles (query tile x key
block) that hold a kept pair: the work a block-sparse kernel does.

On the ``flex`` executor on CUDA the prefill attention (first sequence) of a
sample of layers (``SAMPLED_LAYERS`` spread over the sparsified ones;
``timings.attention_time_layers_sampled``) is also timed on the method's
BlockMask against dense causal SDPA: ``time.attention_prefill_ms`` /
``time.attention_prefill_sdpa_ms`` (the sampled mean times the sparsified
layers) and ``metric.attention_speedup``; per-layer times under
``extra.attention_latency``, where the sparse calls spent their time (selection,
kernel, bookkeeping) under ``extra.attention_parts_ms``, and the first compiled
call of each shape under ``timings.flex_first_calls_s``. On CPU nothing is timed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from sparsebench.attention import Budget, SparseAttention, check_density, density_of
from sparsebench.attention.budget import PHASES
from sparsebench.attention import flex
from sparsebench.attention.flex import PrefillLatency, resolve_executor, resolve_kernel, spread_layers
from sparsebench.attention.prompt_cache import dense_prompt
from sparsebench.cache import persistent_compile_cache
from sparsebench.errors import ConfigError
from sparsebench.laps import Laps
from sparsebench.lm.models import kv_cache, with_cache
from sparsebench.method import Method

FAMILY = "sparse_attention"
# Shown above the family's tables in the report.
REPORT_NOTE = (
    "A method is measured only in the phases its paper sparsifies: quest and mustafar in decode, "
    "vertical-slash in prefill (empty cells: not measured). quest keeps layers 0-1 dense as Quest does, so "
    "its model-wide density is above the target; quest-prefill is our extension to prefill and every layer. "
    "nsa-selection is NSA's selection rule and window without its compressed branch, not NSA. mustafar's "
    "density counts the K/V cache entries read (its dense window included), not query-key pairs, and is "
    "plotted on its own axis; sparge computes every block it cannot predict, so its density may exceed the target."
)


class SparseAttentionMethod(Method):
    family: ClassVar[str] = FAMILY
    patterns: ClassVar[tuple[str, ...]] = ("unstructured",)
    # How far the measured density may fall *below* the budget: methods with a
    # skipping stage after selection (SpargeAttn) spend less than they may.
    may_underspend: ClassVar[bool] = False
    # Methods whose own rules may keep more than the budget (SpargeAttn computes every block it cannot
    # predict): their measured density is the outcome to report, not checked against the target.
    may_overspend: ClassVar[bool] = False

    # Why a method has no block-sparse kernel (the FlexAttention executor then runs the reference path).
    no_block_kernel: ClassVar[str | None] = None
    # The phases the method sparsifies (as its paper does); a job measures only these, so no row carries
    # a number for a phase the method leaves dense (Quest and Mustafar: decode; MInference: prefill).
    phases: ClassVar[tuple[str, ...]] = PHASES
    # What the density counts: "pairs" (kept causal query-key pairs) or "kv" (kept K/V cache entries,
    # Mustafar): the report plots the two on separate axes.
    density_kind: ClassVar[str] = "pairs"

    def sparse_layer(self, layer: int) -> bool:
        """Whether the method sparsifies decoder layer ``layer`` (Quest leaves the first two dense)."""
        return True

    def decide(self, q: torch.Tensor, k: torch.Tensor, budget: Budget, q_prev: torch.Tensor | None):
        """The keys query rows ``q`` (B, H, rows, D) keep among ``k`` (B, H, keys, D): a
        :class:`~sparsebench.attention.pattern.BlockPattern` or :class:`~sparsebench.attention.pattern.LinePattern`.

        ``q_prev``: the last queries of the previous (dense) call of this layer,
        e.g. the end of the prompt during decode; None when there was none.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement decide")

    def select(self, q: torch.Tensor, k: torch.Tensor, budget: Budget, q_prev: torch.Tensor | None) -> torch.Tensor:
        """The decision as a causal keep-mask (B, H, rows, keys) (what the reference executor runs)."""
        return self.decide(q, k, budget, q_prev).token_mask()

    def compress_kv(self, k: torch.Tensor, v: torch.Tensor, budget: Budget):
        """Pruned (k, v) and (kept entries, total entries); the default keeps the cache whole."""
        return k, v, (0, 0)

    def block_size(self, target_pattern) -> int | None:
        """A ``block:B`` target sets the key-block size of block methods."""
        return target_pattern.block if target_pattern.kind == "block" else None


BASE = SparseAttentionMethod
# Which way is better for the metrics this family adds (each also with a _prefill/_decode suffix); the
# report's tables and figures read these (None: a reference, no better direction). Density is a cost.
METRIC_DIRECTIONS = {"density": "lower", "tile_density": "lower", "recall": "higher", "nll": "lower",
                     "attention_speedup": "higher", "chance": None}
DENSITY_TOLERANCE = 0.01  # absolute; cumulative rounding keeps every method far inside it
# Layers whose prefill attention a CUDA job times (spread over the sparsified ones; the profile's
# timing.attention_layers overrides): timing all 30 of SmolLM2's took 51 s of a 71 s 32k job.
SAMPLED_LAYERS = 3


@dataclass
class PhaseOutcome:
    metrics: dict
    stats: dict
    samples: dict = field(default_factory=dict)  # per-unit values of the phase's metrics (CONTRACT)


@contextlib.contextmanager
def part(parts: dict | None, name: str, device):
    """Add the wall seconds of the block to ``parts[name]`` (after the device's queued work: a CUDA
    forward returns before its kernels finish). Nothing is timed, or synchronised, without ``parts``."""
    if parts is None:
        yield
        return
    t0 = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    parts[name] = parts.get(name, 0.0) + time.perf_counter() - t0


def forward_phase(model, session: SparseAttention, ids: torch.Tensor, prompt_len: int, phase: str,
                  source: dict | None = None, origins: list | None = None, parts: dict | None = None) -> torch.Tensor:
    """Logits of the continuation rows (they predict ids[:, prompt_len + 1:]) with ``phase`` sparse.

    ``source`` (the task's model description) lets the decode phase take its dense prompt from the
    prompt cache (``sparsebench.attention.prompt_cache``; None computes it here); where it came from
    ("hit" / "stored") is appended to ``origins``. ``parts``: wall seconds of the prompt's and the
    continuation's forward are added to it (CUDA jobs: where a phase's time goes).
    """
    ids = ids.to(model.device)
    with part(parts, "prompt_forward", ids.device):
        if phase == "decode" and source is not None:
            past, origin = dense_prompt(model, session, ids, prompt_len, source)
            if origins is not None:
                origins.append(origin)
        else:
            sparse_prompt = session.sparse(phase) if phase == "prefill" else contextlib.nullcontext()
            with sparse_prompt:
                past = kv_cache(model(ids[:, :prompt_len], use_cache=True, logits_to_keep=1))
    sparse_cont = session.sparse(phase) if phase == "decode" else contextlib.nullcontext()
    with sparse_cont, part(parts, "continuation_forward", ids.device):
        out = model(ids[:, prompt_len:], **with_cache(model, past), use_cache=True)
    return out.logits[:, :-1].float()


def run_phase(ctx, model, session: SparseAttention, phase: str) -> PhaseOutcome:
    task = ctx.task
    source = task.model_source().describe() if task.params.prompt_cache and hasattr(task, "model_source") else None
    origins = ctx.extra.setdefault("prompt_cache", []) if source is not None else None
    if hasattr(task, "generation_phase"):  # scored on the model's own greedy answers (RULER-style tasks)
        scores, samples = task.generation_phase(ctx, model, session, phase, source, origins)
        metrics = {f"{k}_{phase}": v for k, v in scores.items()}
        stats = session.summary(phase)
        for key in ("density", "recall", "tile_density"):
            metrics[f"{key}_{phase}"] = stats[key]
        return PhaseOutcome(metrics, stats, {f"accuracy_{phase}": samples})
    parts = ctx.extra.setdefault("phase_parts_s", {}).setdefault(phase, {}) if ctx.device.type == "cuda" else None
    with part(parts, "samples", ctx.device):
        task.cached_samples()  # the text, tokenized once per job (the first phase pays it)
    logits = []
    for ids, prompt_len in task.attention_batches():
        lg = forward_phase(model, session, ids, prompt_len, phase, source, origins, parts)
        with part(parts, "logits_to_host", ctx.device):
            logits.append(lg.cpu())
    with part(parts, "score", ctx.device):
        metrics = {f"{k}_{phase}": v for k, v in task.score_continuations(logits).items()}
        samples = {f"{k}_{phase}": v for k, v in task.continuation_samples(logits).items()}
    with part(parts, "summary", ctx.device):
        stats = session.summary(phase)
    for key in ("density", "recall", "tile_density"):
        metrics[f"{key}_{phase}"] = stats[key]
    return PhaseOutcome(metrics, stats, samples)


def run(ctx) -> dict:
    if not hasattr(ctx.task, "attention_batches"):
        raise ConfigError(
            f"task {ctx.job.task!r} has no prompt/continuation samples for sparse attention; use a long-context "
            "task (sparsebench.attention.tasks.LongContextTask), e.g. lm-smollm2-2k, lm-smollm2-4k, lm-smollm2-passkey"
        )
    # where the family's time outside its phase timers goes (s): the compile-cache set-up, the load with
    # its placement, the session's set-up, the phases and what follows them (extra.family_parts_s)
    laps = Laps(ctx.extra.setdefault("family_parts_s", {}))
    density = 1.0 if ctx.method.reference else density_of(ctx.target, "target")
    executor = resolve_executor(ctx.task.params.executor, ctx.profile, "job.task_params.executor")
    if executor == "flex" and ctx.device.type == "cuda":  # before the first compile (flex or our Triton kernels)
        ctx.extra["compile_cache"] = persistent_compile_cache()
    laps.lap("compile_cache")
    model = ctx.load_model()
    laps.lap("load_and_place")
    block = ctx.method.block_size(ctx.target.pattern)
    if block is not None:  # a block:B target overrides the method's key block (recorded under extra)
        ctx.method.params.block = block
        ctx.extra["block"] = block
    latency = None
    if executor == "flex" and ctx.device.type == "cuda" and not ctx.method.no_block_kernel:
        t = ctx.profile.timing
        sparse_layers = [i for i in range(model.config.num_hidden_layers) if ctx.method.sparse_layer(i)]
        latency = PrefillLatency(getattr(torch, ctx.profile.dtype), warmup=t.get("warmup", 10),
                                 repeats=t.get("repeats", 50),
                                 sample=spread_layers(sparse_layers, t.get("attention_layers", SAMPLED_LAYERS)),
                                 scale_to=len(sparse_layers))
    kernel = ctx.task.params.attention_kernel
    if executor == "flex":
        kernel = resolve_kernel(kernel, ctx.profile, "job.task_params.attention_kernel")
    elif kernel != "flex":
        raise ConfigError(f"job.task_params.attention_kernel={kernel!r} needs executor 'flex' (the kernel of the "
                          f"flex executor); executor here is {executor!r}")
    session = SparseAttention(ctx.method, density, query_block=ctx.task.params.query_block, executor=executor,
                              latency=latency, kernel=kernel).install(model)
    ctx.extra["executor"] = session.executor
    if session.executor == "flex":
        ctx.extra["attention_kernel"] = kernel  # which block-sparse kernel ran
    if executor == "flex" and ctx.method.no_block_kernel:
        ctx.extra["no_block_kernel"] = ctx.method.no_block_kernel
    metrics, layers, samples = {}, {}, {}
    first_calls = set(flex.FIRST_CALL_S)
    laps.lap("session")
    with torch.no_grad(), session.active():
        for phase in ctx.method.phases:
            outcome = ctx.timed(phase, run_phase, ctx, model, session, phase)
            metrics.update(outcome.metrics)
            samples.update(outcome.samples or {})
            layers[phase] = outcome.stats
            measured = outcome.stats["sparse_layers_density"]  # the budget binds the layers it sparsifies
            if ctx.method.may_overspend or (ctx.method.may_underspend and measured <= density):
                pass  # a skipping stage after selection spends less; forced blocks may spend more
            else:
                check_density(measured, density, DENSITY_TOLERANCE, f"{ctx.method.name} {phase}")
            ctx.log(f"{phase}: density {outcome.stats['density']:.4f} (sparse layers {measured:.4f}, target "
                    f"{density:.4f}), recall {outcome.stats['recall']:.4f}, "
                    + ", ".join(f"{k}={v:.4g}" for k, v in outcome.metrics.items()))
    laps.lap("phases")
    if session.kernels_ran:  # per phase, the kernel(s) that ran the sparse layers (e.g. Triton decode vs prefill)
        ctx.extra["attention_kernels"] = {p: sorted(k) for p, k in sorted(session.kernels_ran.items())}
    timing = latency.summary() if latency is not None else {}
    if timing:
        ctx.timings["attention_prefill_ms"] = timing["flex_ms"]
        ctx.timings["attention_prefill_sdpa_ms"] = timing["sdpa_ms"]
        ctx.timings["attention_latency_measure_s"] = timing["measure_s"]  # inside the prefill phase's time
        ctx.timings["attention_time_layers_sampled"] = len(timing["layers_sampled"])
        metrics["attention_speedup"] = timing["speedup"]
        ctx.extra["attention_latency"] = timing
    parts = session.parts_ms()
    if parts:  # where a CUDA job's sparse calls spend their time (GPU timeline, ms; see SparseAttention.parts_ms)
        ctx.extra["attention_parts_ms"] = parts
    compiled = {str(k): v for k, v in flex.FIRST_CALL_S.items() if k not in first_calls}
    if compiled:
        ctx.timings["flex_first_calls_s"] = sum(compiled.values())  # compile + autotune, once per shape
        ctx.extra["flex_first_calls"] = {"shapes": len(compiled), "s": sum(compiled.values())}
    mean_density = sum(layers[p]["density"] for p in layers) / len(layers)
    laps.lap("after_phases")
    return {
        "metrics": metrics,
        **({"samples": samples} if samples else {}),
        "sparsity": {
            "target": 1.0 - density,
            "pattern": str(ctx.target.pattern),
            "measured": 1.0 - mean_density,
            "density_kind": ctx.method.density_kind,
            "phases": layers,
        },
    }
