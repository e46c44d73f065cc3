"""sparsebench bench prune: wall time, calibration time and peak RSS of one-shot pruning;
sparsebench bench zeroshot: time of one zero-shot evaluation (lm-eval) of the dense model.

Each (method, target) runs in a fresh process (peak RSS is per process) that
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
    z = bsub.add_parser("zeroshot", help="wall and CPU time of zero-shot evaluation (lm-eval) of the dense model")
    z.add_argument("--task", default="lm-smollm2")
    z.add_argument("--tasks", default="pydoc_lastword,stdlib_docstring", help="comma-separated zero-shot tasks")
    z.add_argument("--limit", type=int, default=100, help="items per task (seeded subset); 0: every item")
    z.add_argument("--batch-size", type=int, default=16)
    z.set_defaults(func=run_zeroshot)


def parse_target(text: str):
    from sparsebench.targets import Target

    text = text.strip()
    if text.endswith("%"):
        return Target.from_config({"sparsity": float(text[:-1]) / 100})
    return Target.from_config({"pattern": text} if ":" in text else {"sparsity": float(text)})


def prune_once(args) -> dict:
    """In the child process: prune one (method, target) and return its timings."""
    import resource

    import torch

    from sparsebench import registry
    from sparsebench.hardware import profile
    from sparsebench.plan import Job
    from sparsebench.runner import JobContext, seed_everything

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
    with torch.no_grad():
        if method.needs_calibration:
            from sparsebench.calibration import prune_sequentially

            prune_sequentially(ctx, model, layers)
        else:
            method.prune(layers, target, ctx.generator)
    return {
        "method": method_name,
        "target": target.label,
        "prune_s": time.perf_counter() - t0,
        "calibration_s": ctx.timings.get("calibration_s", 0.0),
        "prune_layers_s": ctx.timings.get("prune_layers_s", 0.0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
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
