"""``sparsebench bench structured``: measured forward latency with ordinary dense kernels of the dense model,
FLAP's smaller model (as published and with its MLP widths aligned), 2:4 and unstructured masks at the same
sparsity (weights with zeros) and EoRA's added low-rank term.

Each variant is pruned by the family's own step (``prune_model``) from a fresh copy of the dense model; masks
are then baked into the weights (what a user runs without sparse kernels)."""

from __future__ import annotations

import copy
import json
import os
import time

import torch
from torch.nn.utils import parametrize

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.hardware import profile
from sparsebench.params import params_dict
from sparsebench.plan import Job
from sparsebench.pruning.step import prune_model
from sparsebench.runner import JobContext, seed_everything
from sparsebench.targets import Target


def available_profile(name: str):
    """The hardware profile ``--hardware`` names, refused when this machine lacks its device; on a CPU
    profile, torch runs on the profile's thread count."""
    hw = profile(name, "--hardware")
    ok, why = hw.available()
    if not ok:
        raise ConfigError(f"--hardware={name!r}: {why}")
    if hw.device == "cpu":
        torch.set_num_threads(hw.thread_count())
    return hw


def interleaved_forward_ms(models: list, ids, repeats: int) -> list[dict]:
    """Median wall time of one forward over ``ids`` (prefill) and of one single-token forward, for each model;
    the models take turns within every repeat, so a load change on a shared machine hits all of them alike."""

    def sync():
        if ids.device.type == "cuda":
            torch.cuda.synchronize(ids.device)

    times = [{"prefill_ms": [], "token_ms": []} for _ in models]
    with torch.no_grad():
        for i in range(repeats + 2):  # two warm-ups
            for model, t in zip(models, times):
                for label, x in (("prefill_ms", ids), ("token_ms", ids[:, :1])):
                    sync()
                    t0 = time.perf_counter()
                    model(x, use_cache=False)
                    sync()
                    if i >= 2:
                        t[label].append(1e3 * (time.perf_counter() - t0))
    out = []
    for t in times:
        row = {}
        for label, xs in t.items():
            xs.sort()
            row[label] = xs[len(xs) // 2]
            row[label.replace("_ms", "_iqr_ms")] = [xs[len(xs) // 4], xs[(3 * len(xs)) // 4]]
        out.append(row)
    return out


def _variants(sparsities, ranks, align) -> list[tuple[str, str, dict, Target]]:
    variants = [("dense", "dense", {}, Target(0.0))]
    for s in sparsities:
        variants.append((f"FLAP {s:.0%} (smaller dense model)", "flap", {}, Target(s)))
        if align:
            variants.append((f"FLAP {s:.0%}, MLP widths multiples of {align} (flap-aligned)", "flap-aligned",
                             {"align": align}, Target(s)))
        variants.append((f"unstructured {s:.0%} (magnitude, zeros in dense weights)", "magnitude", {}, Target(s)))
    variants.append(("2:4 (magnitude, zeros in dense weights)", "magnitude", {}, Target.from_config({"pattern": "2:4"})))
    for r in ranks:
        variants.append((f"2:4 + EoRA rank {r} (Wanda)", "wanda", {"eora_rank": r},
                         Target.from_config({"pattern": "2:4"})))
    return variants


def mlp_widths(layers) -> list[int]:
    return [m.weight.shape[0] for n, m in layers.items() if n.endswith("gate_proj")]


def run_structured(args) -> int:
    try:
        sparsities = [float(x) for x in args.sparsities.split(",") if x.strip()]
        ranks = [int(x) for x in args.eora_ranks.split(",") if x.strip()]
        raw = json.loads(args.task_params) if args.task_params else {}
    except ValueError:
        raise ConfigError(f"--sparsities={args.sparsities!r} (comma-separated shares in (0, 1)), --eora-ranks="
                          f"{args.eora_ranks!r} (comma-separated integers), --task-params={args.task_params!r} "
                          "(a JSON object)") from None
    if any(not 0 < x < 1 for x in sparsities) or any(r < 1 for r in ranks) or args.align < 0:
        raise ConfigError(f"--sparsities={args.sparsities!r}: shares in (0, 1); --eora-ranks={args.eora_ranks!r}: "
                          f">= 1; --align={args.align}: >= 0 (0: no flap-aligned rows)")
    hw = available_profile(args.hardware)
    tentry = registry.task(args.task, "--task")
    task = tentry.cls.build({**raw, "calibration_windows": args.calibration_windows}, "--task-params")

    def context(method_name, params, target):
        entry = registry.method(method_name)
        method = entry.cls.build(params, "bench")
        job = Job(args.task, method_name, entry.family, target.to_dict(), 0, hw.name, params_dict(task.params),
                  params_dict(method.params))
        return JobContext(job, task, method, target, hw, seed_everything(0))

    dense_ctx = context("dense", {}, Target(0.0))
    dense = dense_ctx.load_model()
    dense.eval()
    device = dense_ctx.device
    ids = task.eval_ids()[: args.batch, : args.tokens].to(device)
    if ids.shape != (args.batch, args.tokens):
        raise ConfigError(f"--batch={args.batch} --tokens={args.tokens}: the task's evaluation windows are "
                          f"{tuple(task.eval_ids().shape)}")

    def count(model, layers):
        total = sum(p.numel() for p in model.parameters()) + sum(b.numel() for n, b in model.named_buffers()
                                                                 if "eora_" in n)
        prunable = sum(int((m.weight != 0).sum()) for m in layers.values())
        return total, prunable

    rows, models = [], []
    load_before = os.getloadavg()[0]
    for label, method_name, params, target in _variants(sparsities, ranks, args.align):
        model = dense if method_name == "dense" else copy.deepcopy(dense)
        layers = task.prunable_layers(model)
        if method_name != "dense":
            ctx = context(method_name, params, target)
            ctx.placed = dense_ctx.placed
            prune_model(ctx, model, layers)
            for mod in layers.values():  # bake the masks: the plain dense layer a user runs
                if parametrize.is_parametrized(mod, "weight"):
                    parametrize.remove_parametrizations(mod, "weight", leave_parametrized=True)
        total, nonzero = count(model, layers)
        rows.append({"variant": label, "method": method_name, "target": target.label, "parameters": total,
                     "prunable_nonzero": nonzero, "mlp_widths": mlp_widths(layers)})
        models.append(model)
    for row, timing in zip(rows, interleaved_forward_ms(models, ids, args.repeats)):
        row.update(timing)
    print(f"{args.task} on {hw.name} ({device}, {dense_ctx.dtype}), batch {args.batch} x {args.tokens} tokens, "
          f"median of {args.repeats} interleaved repeats; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after", flush=True)
    base = rows[0]
    print(f"{'variant':<58} {'params (M)':>10} {'prunable nnz (M)':>16} {'prefill ms':>10} {'x dense':>7} "
          f"{'1-token ms':>10} {'x dense':>7}")
    for r in rows:
        r["prefill_speedup"] = base["prefill_ms"] / r["prefill_ms"]
        r["token_speedup"] = base["token_ms"] / r["token_ms"]
        print(f"{r['variant']:<58} {r['parameters'] / 1e6:>10.2f} {r['prunable_nonzero'] / 1e6:>16.2f} "
              f"{r['prefill_ms']:>10.2f} {r['prefill_speedup']:>6.2f}x {r['token_ms']:>10.2f} {r['token_speedup']:>6.2f}x")
    for r in rows:
        if r["method"].startswith("flap"):
            print(f"  {r['variant']}: MLP widths per block {r['mlp_widths']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"task": args.task, "hardware": hw.name, "device": str(device), "dtype": str(dense_ctx.dtype),
                       "batch": args.batch, "tokens": args.tokens, "repeats": args.repeats, "rows": rows}, f, indent=1)
    return 0
