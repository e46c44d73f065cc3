"""sparsebench bench prune: wall time, calibration time and peak RSS of one-shot pruning;
sparsebench bench structured: measured dense-kernel latency of structured, N:M, unstructured and EoRA models;
sparsebench bench parity: perplexity over equivalent orderings of the same calibration windows and thread counts
(the spread that float rounding alone gives), beside the authors' SparseGPT over the same runs;
sparsebench bench eora-budget: EoRA's compensation against pruning less at the same parameter count;
sparsebench bench zeroshot: time of one zero-shot evaluation (lm-eval) of the dense model;
sparsebench bench startup: a job's start-up per family (imports, discovery, model load, data; sparsebench.startup).

The pruning benchmarks' code lives in ``sparsebench/pruning/bench_*.py``; this module holds their arguments.
In ``bench prune`` each (method, target) runs in a fresh process (peak RSS is per process) that
loads the task's model, prunes it exactly as a job does (sequential calibration
for methods that calibrate) and reports its timings; no evaluation is run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from sparsebench.startup import register_startup

DEFAULT_METHODS = "magnitude,wanda,sparsegpt,dsnot"
DEFAULT_TARGETS = "50%,2:4,4:8,70%"


def register(sub):
    p = sub.add_parser("bench", help="benchmarks that print speed and memory figures")
    bsub = p.add_subparsers(dest="bench", required=True)
    b = bsub.add_parser("prune", help="prune wall time, calibration time and peak RSS per method and pattern")
    b.add_argument("--task", default="lm-smollm2")
    b.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated (default {DEFAULT_METHODS})")
    b.add_argument("--targets", default=DEFAULT_TARGETS,
                   help="comma-separated: '50%%', '2:4', ... (default " + DEFAULT_TARGETS.replace("%", "%%") + ")")
    b.add_argument("--calibration-windows", type=int, default=32)
    b.add_argument("--calibration-window", type=int, default=512)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", help="also write the rows to this file")
    b.add_argument("--one", help=argparse.SUPPRESS, default=None)  # child process: "method|target"
    b.set_defaults(func=run)
    register_decode(bsub)
    register_structured(bsub)
    register_parity(bsub)
    register_startup(bsub)
    z = bsub.add_parser("zeroshot", help="wall and CPU time of zero-shot evaluation (lm-eval) of the dense model")
    z.add_argument("--task", default="lm-smollm2")
    z.add_argument("--tasks", default="pydoc_lastword,stdlib_docstring", help="comma-separated zero-shot tasks")
    z.add_argument("--limit", type=int, default=100, help="items per task (seeded subset); 0: every item")
    z.add_argument("--batch-size", type=int, default=16)
    z.set_defaults(func=run_zeroshot)


def parse_target(text: str):
    from sparsebench.pruning.bench_parity import parse_target as parse

    return parse(text)


def prune_once(args) -> dict:
    """In the child process: prune one (method, target) and return its timings."""
    import torch

    from sparsebench import registry
    from sparsebench.hardware import profile
    from sparsebench.plan import Job
    from sparsebench.pruning.step import prune_model
    from sparsebench.runner import JobContext, peak_rss_mb, seed_everything

    method_name, target_text = args.one.split("|")
    target = parse_target(target_text)
    hw = profile("cpu", "bench")
    torch.set_num_threads(hw.thread_count())
    task_params = {"calibration_windows": args.calibration_windows, "calibration_window": args.calibration_window}
    task = registry.task(args.task, "--task").cls.build(task_params, "bench")
    entry = registry.method(method_name, "--methods")
    method = entry.cls.build({}, "bench")
    job = Job(task=args.task, method=method_name, family=entry.family, target=target.to_dict(), seed=args.seed,
              hardware="cpu", task_params=task_params, method_params={})
    ctx = JobContext(job, task, method, target, hw, seed_everything(args.seed))
    model = ctx.timed("load", task.load_model)
    layers = task.prunable_layers(model)
    t0 = time.perf_counter()
    prune_model(ctx, model, layers)
    return {
        "method": method_name,
        "target": target.label,
        "prune_s": time.perf_counter() - t0,
        "calibration_s": ctx.timings.get("calibration_s", 0.0),
        "prune_layers_s": ctx.timings.get("prune_layers_s", 0.0),
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }


def run(args) -> int:
    if args.one:
        print("BENCH " + json.dumps(prune_once(args)), flush=True)
        return 0
    rows = []
    print(f"{args.task}: calibration {args.calibration_windows} x {args.calibration_window} tokens, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared machines make times noisy)")
    print(f"{'method':<12} {'target':<7} {'prune wall (s)':>14} {'calibration (s)':>16} {'per-layer (s)':>14} "
          f"{'peak RSS (MB)':>14}")
    for method in args.methods.split(","):
        for target in args.targets.split(","):
            cmd = [sys.executable, "-m", "sparsebench", "bench", "prune", "--task", args.task, "--one",
                   f"{method.strip()}|{target.strip()}", "--calibration-windows", str(args.calibration_windows),
                   "--calibration-window", str(args.calibration_window), "--seed", str(args.seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH ")), None)
            if proc.returncode or line is None:
                print(f"{method:<12} {target:<7} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
                continue
            row = json.loads(line[len("BENCH "):])
            rows.append(row)
            print(f"{row['method']:<12} {row['target']:<7} {row['prune_s']:>14.1f} {row['calibration_s']:>16.1f} "
                  f"{row['prune_layers_s']:>14.1f} {row['peak_rss_mb']:>14.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


def register_decode(bsub):
    d = bsub.add_parser("decode", help="end-to-end decode tokens/s of a LLaMA-7B-shaped model (random fp16 "
                                       "weights, CUDA): dense vs 2:4 and TEAL activation-sparse GEMVs")
    d.add_argument("--layers", type=int, default=32)
    d.add_argument("--context", type=int, default=1024, help="KV cache length attended by the decoded token")
    d.add_argument("--teal", default="0.4,0.5", help="comma-separated shares of zeroed activations")
    d.add_argument("--repeats", type=int, default=50, help="graph replays per variant in every round (median)")
    d.add_argument("--rounds", type=int, default=10,
                   help="interleaved rounds over the variants; speed-up intervals are over the rounds (>= 2)")
    d.add_argument("--prefill", default="16384,32768",
                   help="comma-separated prompt lengths (multiples of 128) for time to first token, dense vs "
                        "block-sparse attention ('' to skip)")
    d.add_argument("--prefill-density", default="0.1", help="comma-separated shares of causal blocks kept")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--json", help="also write the rows to this file")
    d.set_defaults(func=run_decode)


def run_decode(args) -> int:
    from sparsebench.errors import ConfigError
    from sparsebench.kernels.decode_bench import run_decode_bench

    try:
        teal = tuple(float(t) for t in args.teal.split(",") if t.strip())
        dens = tuple(float(t) for t in args.prefill_density.split(",") if t.strip())
        seqs = tuple(int(t) for t in args.prefill.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--teal={args.teal!r}, --prefill-density={args.prefill_density!r}: need comma-separated "
                          f"shares in (0, 1]; --prefill={args.prefill!r}: comma-separated token counts") from None
    if any(n <= 0 or n % 128 for n in seqs) or any(not 0 < d <= 1 for d in dens):
        raise ConfigError(f"--prefill={args.prefill!r} (positive multiples of 128), "
                          f"--prefill-density={args.prefill_density!r} (shares in (0, 1])")
    if any(not 0 < t < 1 for t in teal) or args.layers < 1 or args.context < 1:
        raise ConfigError(f"--teal={args.teal!r} (shares in (0, 1)), --layers={args.layers}, "
                          f"--context={args.context} (>= 1)")
    if args.rounds < 2 or args.repeats < 1:
        raise ConfigError(f"--rounds={args.rounds} (>= 2: the interval is over the rounds), "
                          f"--repeats={args.repeats} (>= 1)")
    doc = run_decode_bench(args.layers, args.context, teal, args.repeats, args.seed,
                           log=lambda m: print(m, file=sys.stderr, flush=True), prefill=seqs, prefill_densities=dens,
                           rounds=args.rounds)
    if args.json:
        from pathlib import Path

        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{'variant':<10} {'ms/token':>9} {'tokens/s':>9} {'speed-up':>8} {'95 % interval':>16} {'zeroed':>7} "
          f"verdict")
    for r in doc["rows"]:
        z = f"{100 * r['zero_share']:.1f}%" if "zero_share" in r else ""
        ci = "[{:.3f}, {:.3f}]".format(*r["speedup_ci95"])
        v = f"{r['verdict']} (target {r['target']}x)" if "verdict" in r else ""
        print(f"{r['variant']:<10} {r['step_ms']:>9.3f} {r['tokens_per_s']:>9.1f} {r['speedup']:>7.3f}x {ci:>16} "
              f"{z:>7} {v}")
    if doc["prefill"]:
        print(f"{'prefill':<22} {'tokens':>6} {'TTFT ms':>9} {'speed-up':>8} {'attention x':>11}")
        for r in doc["prefill"]:
            att = f"{r['attention_speedup']:.2f}x" if "attention_speedup" in r else ""
            print(f"{r['variant']:<22} {r['tokens']:>6} {r['ttft_ms']:>9.1f} {r['speedup']:>7.2f}x {att:>11}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score 95 % interval of a binomial proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5 / (1 + z * z / n)
    return (centre - half, centre + half)


def run_zeroshot(args) -> int:
    import resource

    import torch

    from sparsebench import registry
    from sparsebench.hardware import profile

    torch.set_num_threads(profile("cpu", "bench").thread_count())
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    task = registry.task(args.task, "--task").cls.build(
        {"zeroshot": names, "zeroshot_limit": args.limit, "zeroshot_batch_size": args.batch_size}, "bench")
    model = task.load_model().eval()

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    with torch.no_grad():
        out = task.zeroshot(model)
    wall, cpu_s = time.perf_counter() - t0, cpu() - c0
    print(f"{args.task} dense, zero-shot {', '.join(names)} (limit {args.limit or 'all'}): {wall:.1f} s wall, "
          f"{cpu_s:.1f} s CPU, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'task':<18} {'n':>4} {'acc':>6} {'95% interval':>15} {'acc_norm':>9} {'chance':>7}")
    for name in names:
        rec, m = out["zeroshot"][name], out["metrics"]
        acc = m[f"zeroshot.{name}.acc"]
        lo, hi = wilson(round(acc * rec["n"]), rec["n"])
        norm = m.get(f"zeroshot.{name}.acc_norm")
        print(f"{name:<18} {rec['n']:>4} {acc:>6.3f} {f'[{lo:.3f}, {hi:.3f}]':>15} "
              f"{'' if norm is None else f'{norm:.3f}':>9} {rec['chance']:>7.2f}")
    return 0


def register_structured(bsub):
    s = bsub.add_parser("structured", help="measured forward latency with ordinary dense kernels: the dense model, "
                                           "FLAP's smaller model, 2:4 and unstructured masks at the same sparsity "
                                           "(weights with zeros) and EoRA's added low-rank term")
    s.add_argument("--task", default="lm-smollm2")
    s.add_argument("--task-params", default=None, help="the task's parameters as JSON (e.g. lm-local's model/text)")
    s.add_argument("--hardware", default="cpu", help="profile: its device and dtype (default cpu)")
    s.add_argument("--sparsities", default="0.2,0.5", help="FLAP and unstructured sparsities (2:4 is always 0.5)")
    s.add_argument("--eora-ranks", default="16,128", help="ranks of EoRA over Wanda 2:4 ('' to skip)")
    s.add_argument("--align", type=int, default=128,
                   help="flap-aligned rows: kept MLP widths rounded to multiples of this (0: no such rows)")
    s.add_argument("--calibration-windows", type=int, default=8)
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--tokens", type=int, default=512, help="prefill length of the timed forward")
    s.add_argument("--repeats", type=int, default=10)
    s.add_argument("--json", help="also write the rows to this file")
    s.set_defaults(func=lambda args: _load("bench_structured").run_structured(args))


def register_parity(bsub):
    q = bsub.add_parser("parity", help="perplexity of one method over equivalent orderings of the same calibration "
                                       "windows: the spread float rounding alone gives, beside the authors' spread")
    q.add_argument("--task", default="lm-smollm2")
    q.add_argument("--task-params", default=None, help="the task's parameters as JSON")
    q.add_argument("--method", default="sparsegpt")
    q.add_argument("--targets", default="50%,2:4")
    q.add_argument("--orderings", type=int, default=3, help="0 is the task's order; k > 0 a seeded permutation")
    q.add_argument("--threads", default="1", help="comma-separated intra-op thread counts; every ordering runs on each")
    q.add_argument("--authors", default=None, help="directory holding IST-DASLab/sparsegpt (llama.py, sparsegpt.py, "
                                                   "fetched separately): run their SparseGPT over the same orderings")
    q.add_argument("--hardware", default="cpu")
    q.add_argument("--reference", default=None,
                   help="JSON file {target label: [the authors' perplexities over such orderings]} to show beside")
    q.add_argument("--json", help="also write the rows to this file")
    q.set_defaults(func=lambda args: _load("bench_parity").run_parity(args))
    register_eora_budget(bsub)


def register_eora_budget(bsub):
    e = bsub.add_parser("eora-budget", help="EoRA's low-rank compensation vs pruning less at the same parameter "
                                            "count: perplexity, paired over the evaluation windows")
    e.add_argument("--task", default="lm-smollm2")
    e.add_argument("--task-params", default=None, help="the task's parameters as JSON")
    e.add_argument("--method", default="wanda")
    e.add_argument("--sparsity", type=float, default=0.5)
    e.add_argument("--ranks", default="16,64,128")
    e.add_argument("--calibration-windows", type=int, default=16)
    e.add_argument("--eval-windows", type=int, default=8)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--hardware", default="cpu")
    e.add_argument("--json", help="also write the rows to this file")
    e.set_defaults(func=lambda args: _load("bench_eora").run_eora_budget(args))


def _load(name: str):
    """The benchmark's module in the pruning engine (imported when its subcommand runs: the CLI starts fast)."""
    import importlib

    return importlib.import_module(f"sparsebench.pruning.{name}")
