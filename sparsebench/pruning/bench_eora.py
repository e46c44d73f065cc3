"""``sparsebench bench eora-budget``: EoRA's low-rank compensation against simply pruning less, at equal
parameters.

For each rank r, the method at sparsity s with ``eora_rank: r`` stores the non-zero weights plus A and B
(r x (in + out) per layer). The same method without EoRA at the lower sparsity s' = s - added / dense
(dense: the prunable layers' weight count) keeps the same number of parameters as non-zero weights. Both are
pruned by the family's own step and evaluated on the task's windows; the perplexities are compared paired
over the windows (``sparsebench.stats.bootstrap_contrast``: the same windows on both sides).
"""

from __future__ import annotations

import json
import os

import torch

from sparsebench import registry
from sparsebench.errors import ConfigError
from sparsebench.params import params_dict
from sparsebench.plan import Job
from sparsebench.pruning.bench_structured import available_profile
from sparsebench.pruning.step import prune_model
from sparsebench.runner import JobContext, seed_everything
from sparsebench.stats import bootstrap_contrast, side_of
from sparsebench.targets import Target


def equal_parameter_sparsity(sparsity: float, added: int, dense: int) -> float:
    """The sparsity whose non-zero count equals (1 - sparsity) * dense + added."""
    s = sparsity - added / dense
    if s <= 0:
        raise ConfigError(f"EoRA adds {added} parameters, {added / dense:.1%} of the {dense} prunable weights: "
                          f"more than sparsity {sparsity:g} removed, so no sparsity matches it (use a lower rank)")
    return s


def prune_and_evaluate(args, task, hw, method_name: str, params: dict, target: Target) -> dict:
    entry = registry.method(method_name, "--method")
    method = entry.cls.build(params, "--method")
    job = Job(args.task, method_name, entry.family, target.to_dict(), args.seed, hw.name, params_dict(task.params),
              params_dict(method.params))
    ctx = JobContext(job, task, method, target, hw, seed_everything(args.seed))
    model = ctx.load_model()
    layers = task.prunable_layers(model)
    out = prune_model(ctx, model, layers)
    metrics, samples = task.evaluate_with_samples(model)
    dense = sum(m.weight.numel() for m in layers.values())
    nonzero = sum(int((m.weight != 0).sum()) for m in layers.values())
    added = out["sparsity"].get("eora", {}).get("parameters_added", 0)
    return {"method": method_name, "params": params, "sparsity": target.sparsity,
            "measured_sparsity": out["sparsity"]["measured"], "perplexity": metrics["perplexity"],
            "window_nll": samples["perplexity"]["values"], "dense_prunable": dense, "nonzero": nonzero,
            "added": added, "stored": nonzero + added,
            "rows": sum(m.weight.shape[0] for m in layers.values())}


def run_eora_budget(args) -> int:
    try:
        ranks = [int(x) for x in args.ranks.split(",") if x.strip()]
        raw = json.loads(args.task_params) if args.task_params else {}
    except ValueError:
        raise ConfigError(f"--ranks={args.ranks!r}: comma-separated integers; --task-params={args.task_params!r}: "
                          "a JSON object") from None
    if not ranks or any(r < 1 for r in ranks) or not 0 < args.sparsity < 1:
        raise ConfigError(f"--ranks={args.ranks!r}: integers >= 1; --sparsity={args.sparsity}: in (0, 1)")
    hw = available_profile(args.hardware)
    task = registry.task(args.task, "--task").cls.build(
        {**raw, "calibration_windows": args.calibration_windows, "eval_windows": args.eval_windows}, "--task-params")
    print(f"{args.task} on {hw.name}: {args.method} at {args.sparsity:g}, calibration {args.calibration_windows} x "
          f"{task.params.calibration_window}, evaluation {args.eval_windows} x {task.params.window} tokens; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    base = prune_and_evaluate(args, task, hw, args.method, {}, Target(args.sparsity))
    print(f"  {args.method} {args.sparsity:.1%}: perplexity {base['perplexity']:.3f}", flush=True)
    rows = []
    for r in ranks:
        eora = prune_and_evaluate(args, task, hw, args.method, {"eora_rank": r}, Target(args.sparsity))
        s2 = equal_parameter_sparsity(args.sparsity, eora["added"], eora["dense_prunable"])
        less = prune_and_evaluate(args, task, hw, args.method, {}, Target(s2))
        c = bootstrap_contrast(side_of([eora["window_nll"]], "exp_mean", "window"),
                               side_of([less["window_nll"]], "exp_mean", "window"), paired=True)
        rows.append({"rank": r, "eora": eora, "prune_less": less, "ratio": 1 + c.rel.estimate,
                     "ratio_interval": [1 + c.rel.lo, 1 + c.rel.hi], "interval_method": c.rel.method})
        print(f"  rank {r}: +{eora['added'] / 1e6:.2f} M ({eora['added'] / eora['dense_prunable']:.1%}); "
              f"EoRA {eora['perplexity']:.3f} vs {args.method} at {s2:.1%} {less['perplexity']:.3f}", flush=True)
    print(f"{'rank':>5} {'added (M)':>9} {'stored EoRA (M)':>15} {'stored s2 (M)':>13} {'s2':>6} "
          f"{'ppl EoRA':>9} {'ppl s2':>8} {'EoRA / s2 [95%]':>24}")
    for r in rows:
        e, l = r["eora"], r["prune_less"]
        lo, hi = r["ratio_interval"]
        print(f"{r['rank']:>5} {e['added'] / 1e6:>9.2f} {e['stored'] / 1e6:>15.2f} {l['stored'] / 1e6:>13.2f} "
              f"{l['sparsity']:>6.1%} {e['perplexity']:>9.3f} {l['perplexity']:>8.3f} "
              f"{'%.3f [%.3f, %.3f]' % (r['ratio'], lo, hi):>24}")
    print(f"(interval: {rows[0]['interval_method']}, paired over the same evaluation windows)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"task": args.task, "method": args.method, "sparsity": args.sparsity, "hardware": hw.name,
                       "calibration_windows": args.calibration_windows, "eval_windows": args.eval_windows,
                       "base": base, "rows": rows}, f, indent=1)
    return 0
