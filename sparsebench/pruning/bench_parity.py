"""``sparsebench bench parity``: one method's perplexity over equivalent runs of the same job -- the same
calibration windows in other orders, on other thread counts -- so only float rounding changes; with
``--authors DIR`` the authors' SparseGPT (IST-DASLab/sparsegpt, fetched separately into DIR, never copied
into the project) runs over the very same orderings and threads in a child process each
(``sparsebench.pruning.parity_authors``), and both spreads (mean, min-max) are printed side by side."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import torch

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.params import params_dict
from sparsebench.plan import Job
from sparsebench.pruning.bench_structured import available_profile
from sparsebench.pruning.step import prune_model
from sparsebench.runner import JobContext, seed_everything
from sparsebench.targets import Target


def parse_target(text: str) -> Target:
    text = text.strip()
    if text.endswith("%"):
        return Target.from_config({"sparsity": float(text[:-1]) / 100})
    return Target.from_config({"pattern": text} if ":" in text else {"sparsity": float(text)})


class PermutedCalibration:
    """The task, with its calibration windows in another order (the same token ids, so the same data: only
    the order in which statistics are summed, and so their rounding, changes)."""

    def __init__(self, task, ordering: int):
        self._task, self.ordering = task, ordering

    def __getattr__(self, name):
        return getattr(self._task, name)

    def calibration_windows(self, seed: int):
        ids = self._task.calibration_windows(seed)
        if self.ordering == 0:
            return ids
        order = torch.randperm(ids.shape[0], generator=torch.Generator().manual_seed(self.ordering))
        return ids[order]


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values),
            "range": max(values) - min(values)}


def ours_once(args, task, method, entry, hw, target, ordering: int, threads: int) -> float:
    torch.set_num_threads(threads)
    job = Job(args.task, args.method, entry.family, target.to_dict(), 0, hw.name, params_dict(task.params),
              params_dict(method.params))
    ctx = JobContext(job, PermutedCalibration(task, ordering), method, target, hw, seed_everything(0))
    model = ctx.load_model()
    prune_model(ctx, model, task.prunable_layers(model))
    with torch.no_grad():
        return task.evaluate(model)["perplexity"]


def authors_once(args, target: Target, ordering: int, threads: int) -> float:
    cmd = [sys.executable, "-m", "sparsebench.pruning.parity_authors", "--code", args.authors, "--task", args.task,
           "--task-params", args.task_params or "{}", "--target", target.label, "--ordering", str(ordering),
           "--threads", str(threads), "--hardware", args.hardware]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("PARITY ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"the authors' SparseGPT failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return json.loads(line[len("PARITY "):])["perplexity"]


def run_parity(args) -> int:
    if args.orderings < 1 or args.orderings * len(args.threads.split(",")) < 2:
        raise ConfigError(f"--orderings={args.orderings} --threads={args.threads!r}: a spread needs at least 2 runs")
    try:
        thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--threads={args.threads!r}: comma-separated thread counts (>= 1)") from None
    if any(t < 1 for t in thread_counts):
        raise ConfigError(f"--threads={args.threads!r}: comma-separated thread counts (>= 1)")
    if args.authors and args.method != "sparsegpt":
        raise ConfigError(f"--authors with --method={args.method!r}: the authors' runner is SparseGPT's (allowed: "
                          "sparsegpt)")
    hw = available_profile(args.hardware)
    reference = {}
    if args.reference:
        with open(args.reference) as f:
            reference = json.load(f)
    task = registry.task(args.task, "--task").cls.build(json.loads(args.task_params) if args.task_params else None,
                                                       "--task-params")
    entry = registry.method(args.method, "--method")
    method = entry.cls.build({}, "bench")
    runs = [(k, t) for t in thread_counts for k in range(args.orderings)]
    rows = []
    for text in args.targets.split(","):
        target = parse_target(text)
        ours, theirs = [], []
        for k, t in runs:
            ours.append(ours_once(args, task, method, entry, hw, target, k, t))
            line = f"{args.method} {target.label} ordering {k}, {t} thread(s): ours {ours[-1]:.4f}"
            if args.authors:
                theirs.append(authors_once(args, target, k, t))
                line += f", authors' {theirs[-1]:.4f}"
            print(line, flush=True)
        theirs = theirs or reference.get(target.label, [])
        rows.append({"target": target.label, "runs": [{"ordering": k, "threads": t} for k, t in runs],
                     "ours": ours, "theirs": theirs, "ours_spread": spread(ours),
                     "theirs_spread": spread(theirs) if theirs else None})
    print(f"{'target':<7} {'ours mean':>9} {'ours min-max':>17} {'theirs mean':>11} {'theirs min-max':>17} "
          f"{'ours/theirs (means)':>19}")
    for r in rows:
        o, t = r["ours_spread"], r["theirs_spread"]
        span = "{min:.3f}-{max:.3f}"
        line = f"{r['target']:<7} {o['mean']:>9.3f} {span.format(**o):>17}"
        if t:
            line += f" {t['mean']:>11.3f} {span.format(**t):>17} {o['mean'] / t['mean']:>19.4f}"
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"task": args.task, "task_params": args.task_params, "method": args.method,
                       "hardware": hw.name, "authors_code": args.authors, "rows": rows}, f, indent=1)
    return 0
