"""sparsebench attention-flex dump | check: the FlexAttention executor on one long sequence, method by method.

``dump`` (any machine with the offline model): runs ``lm-smollm2-2k``'s first
sequence through SmolLM2 and saves the q, k, v that every ``--every``-th
layer's attention function receives (after RoPE), in float16.

``check`` (a CUDA machine): for every sparse-attention method at ``--density``,
each saved layer's prefill decision runs on the reference executor (masked
dense attention, float32) and on FlexAttention (compiled, float32) on the
BlockMask built from the decision; it prints the largest relative error
between them, the measured density, tile density and recall, and the prefill
attention time of the method's BlockMask under compiled FlexAttention against
dense causal SDPA, in float16 (kernel-suite timing: warm-up, interleaved
repetitions, median). Without ``--qkv`` it uses random q, k, v of SmolLM2's
shapes (9 query heads, 3 key/value heads, head_dim 64).

Imports nothing heavy at import time (the GPU machine runs this without snakemake/mlflow).
"""

from __future__ import annotations

import json
import sys
import time


def register(sub):
    p = sub.add_parser("attention-flex", help="sparse attention on FlexAttention vs the reference executor and SDPA")
    acts = p.add_subparsers(dest="attention_flex_command", required=True, metavar="ACTION")
    d = acts.add_parser("dump", help="save q, k, v of SmolLM2's layers on a 2k-token stdlib sequence (float16)")
    d.add_argument("--out", required=True, help="a .pt file")
    d.add_argument("--every", type=int, default=3, help="keep layers 0, every, 2*every, ...")
    d.add_argument("--seq-len", type=int, default=2048)
    d.set_defaults(func=dump)
    c = acts.add_parser("check", help="reference vs flex outputs and flex vs SDPA prefill time per method (CUDA)")
    c.add_argument("--qkv", default=None, help="a dump from `attention-flex dump` (default: random q, k, v)")
    c.add_argument("--density", type=float, default=0.125)
    c.add_argument("--seq-len", type=int, default=2048, help="for random q, k, v")
    c.add_argument("--layers", type=int, default=10, help="for random q, k, v")
    c.add_argument("--methods", default=None, help="comma-separated (default: every sparse-attention method)")
    c.add_argument("--query-block", type=int, default=64)
    c.add_argument("--json", default=None, help="also write the rows here")
    c.add_argument("--device", default="cuda", help="cpu: outputs only (eager flex_attention, nothing timed)")
    c.set_defaults(func=check)
    m = acts.add_parser("model", help="reference vs flex sessions inside a random-weight SmolLM2-shaped model")
    m.add_argument("--layers", type=int, default=4)
    m.add_argument("--seq-len", type=int, default=2048)
    m.add_argument("--continuation", type=int, default=256)
    m.add_argument("--density", type=float, default=0.125)
    m.add_argument("--methods", default="quest-prefill,sparge,nsa-selection,streaming-llm,vertical-slash")
    m.add_argument("--device", default="cuda")
    m.set_defaults(func=model_check)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dump(args) -> int:
    import torch
    from transformers import AttentionInterface

    from sparsebench import registry
    from sparsebench.attention.executor import dense_attention

    task = registry.task("lm-smollm2-2k").cls.build({"seq_len": args.seq_len, "sequences": 1}, "dump")
    model = task.load_model().eval()
    saved = {}

    def capture(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
        if module.layer_idx % args.every == 0:
            saved[module.layer_idx] = tuple(x.detach().to(torch.float16).clone() for x in (query, key, value))
        rep = query.shape[1] // key.shape[1]
        out = dense_attention(query, key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1),
                              scaling if scaling is not None else query.shape[-1] ** -0.5, 0)
        return out.transpose(1, 2).contiguous(), None

    AttentionInterface.register("sparsebench_capture", capture)
    model.set_attn_implementation("sparsebench_capture")
    ids, _ = task.cached_samples()
    with torch.no_grad():
        model(ids[:1], use_cache=False)
    info = task.data_info()
    torch.save({"layers": saved, "data": info, "scaling": model.config.head_dim ** -0.5}, args.out)
    _log(f"saved layers {sorted(saved)} of {info['model']} on {info['seq_len']} tokens to {args.out}")
    return 0


def _inputs(args, device):
    import torch

    if args.qkv:
        blob = torch.load(args.qkv, map_location="cpu", weights_only=True)
        layers = {k: tuple(x.to(device) for x in v) for k, v in sorted(blob["layers"].items())}
        return layers, blob["scaling"], (f"SmolLM2-135M q/k/v of layers {sorted(layers)} on a "
                                         f"{blob['data']['seq_len']}-token CPython stdlib file (lm-smollm2-2k)")
    g = torch.Generator().manual_seed(0)
    s = args.seq_len
    layers = {i: (torch.randn(1, 9, s, 64, generator=g).to(device, torch.float16),
                  torch.randn(1, 3, s, 64, generator=g).to(device, torch.float16),
                  torch.randn(1, 3, s, 64, generator=g).to(device, torch.float16)) for i in range(args.layers)}
    return layers, 64 ** -0.5, "random q/k/v of SmolLM2's shapes"


def check(args) -> int:
    import torch

    from sparsebench import registry
    from sparsebench.attention import Budget, masked_attention
    from sparsebench.attention.flex import PrefillLatency, flex_attention_forward

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        _log("attention-flex check: no CUDA device (--device cpu compares outputs only)")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # the float32 comparison must be float32
    layers, scaling, source = _inputs(args, device)
    names = args.methods.split(",") if args.methods else sorted(
        n for n, e in registry.methods().items() if e.family == "sparse_attention")
    rows = []
    for name in names:
        method = registry.method(name).cls()
        density = 1.0 if method.reference else args.density
        latency = PrefillLatency(torch.float16, warmup=10, repeats=30, budget_s=0.2)
        errs, recall, kept, causal, tiles, tiles_causal, failure = [], 0.0, 0, 0, 0, 0, ""
        t0 = time.perf_counter()
        for layer, (q16, k16, v16) in layers.items():
            q, k, v = q16.float(), k16.float(), v16.float()
            budget = Budget(density, "prefill", 0, q.shape[2], args.query_block, k.shape[1])
            k, v, _ = method.compress_kv(k, v, budget)
            rep = q.shape[1] // k.shape[1]
            kh, vh = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            pattern = method.decide(q, kh, budget, None)
            ref, stats = masked_attention(q, kh, vh, pattern.token_mask(), scaling, 0)
            tiling = pattern.tiling()
            tiles += int(pattern.tiles(tiling)[0].sum())
            tiles_causal += int(tiling.causal_tiles(device)[0].sum()) * q.shape[1]
            kept, causal, recall = kept + stats.kept_pairs, causal + stats.causal_pairs, recall + stats.recall
            if method.no_block_kernel:
                continue
            try:
                out, mask = flex_attention_forward(q, k, v, pattern, scaling)
                errs.append(float((out - ref).norm() / ref.norm()))
                latency.measure(layer, q, k, v, mask, scaling)
            except Exception as exc:  # noqa: BLE001 - one method's kernel failure must not hide the others
                failure = f"flex failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                _log(f"{name} layer {layer}: {failure}")
                break
            del ref, out, stats
        t = latency.summary()
        rows.append({"method": name, "density": kept / causal, "tile_density": tiles / tiles_causal,
                     "recall": recall / len(layers), "max_rel_err": max(errs) if errs else None,
                     "flex_ms": t.get("flex_ms"), "sdpa_ms": t.get("sdpa_ms"), "speedup": t.get("speedup"),
                     "note": method.no_block_kernel or failure, "timing": t.get("timing"), "layers": t.get("layers")})
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        _log(f"{name}: {time.perf_counter() - t0:.1f} s (compiled graphs so far: {graphs}); "
             + ", ".join(f"{k}={v}" for k, v in rows[-1].items() if k != "layers"))
    _print(rows, source, len(layers), args, _device_name(device))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"source": source, "device": _device_name(device), "torch": torch.__version__,
                       "density": args.density, "rows": rows}, fh, indent=1)
    return 0


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _print(rows, source, n_layers, args, device_name) -> None:
    import torch

    print(f"# {device_name}, torch {torch.__version__}; {source}; prefill, query block "
          f"{args.query_block}; budget density {args.density}; times summed over {n_layers} layers (float16, "
          f"timing: {', '.join(sorted({r['timing'] for r in rows if r['timing']}))})")
    print("| method | density | tile density | recall | max rel. err flex vs ref (fp32) | flex ms | SDPA causal ms "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        fmt = lambda x, f: "-" if x is None else format(x, f)  # noqa: E731
        note = f" ({r['note'].split(':')[0]})" if r["note"] else ""
        print(f"| {r['method']}{note} | {r['density']:.3f} | {r['tile_density']:.3f} | {r['recall']:.3f} | "
              f"{fmt(r['max_rel_err'], '.1e')} | {fmt(r['flex_ms'], '.3f')} | {fmt(r['sdpa_ms'], '.3f')} | "
              f"{fmt(r['speedup'], '.2f')} |")


def model_check(args) -> int:
    """The family's path (AttentionInterface -> session -> executor) on CUDA: prefill and decode logits of the
    flex session against the reference session, and the session's recorded prefill latency."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sparsebench import registry
    from sparsebench.attention import SparseAttention
    from sparsebench.attention.flex import PrefillLatency
    from sparsebench.families.sparse_attention import forward_phase

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                      rope_theta=100000.0)
    model = LlamaForCausalLM(cfg).eval().to(args.device)
    ids = torch.randint(0, cfg.vocab_size, (1, args.seq_len), generator=torch.Generator().manual_seed(1))
    prompt = args.seq_len - args.continuation
    print(f"# random-weight SmolLM2-shaped llama ({args.layers} layers), {args.seq_len} tokens, "
          f"prompt {prompt}, density {args.density}")
    print("| method | prefill logits rel. err | decode logits rel. err | density prefill/decode | "
          "flex / SDPA prefill ms | speed-up |")
    print("|---|---|---|---|---|---|")
    for name in args.methods.split(","):
        logits, sessions = {}, {}
        for executor in ("reference", "flex"):
            latency = PrefillLatency(torch.float16, warmup=5, repeats=20, budget_s=0.1) if executor == "flex" else None
            session = SparseAttention(registry.method(name).cls(), args.density, executor=executor,
                                      latency=latency).install(model)
            with torch.no_grad(), session.active():
                logits[executor] = [forward_phase(model, session, ids, prompt, p) for p in ("prefill", "decode")]
            sessions[executor] = session
        err = [float((f - r).norm() / r.norm()) for r, f in zip(logits["reference"], logits["flex"])]
        s = sessions["flex"]
        t = s.latency.summary() if s.latency is not None else {}
        dens = f"{s.summary('prefill')['density']:.3f}/{s.summary('decode')['density']:.3f}"
        lat = f"{t['flex_ms']:.3f} / {t['sdpa_ms']:.3f}" if t else "-"
        print(f"| {name} | {err[0]:.1e} | {err[1]:.1e} | {dens} | {lat} | {t.get('speedup', float('nan')):.2f} |",
              flush=True)
    return 0
