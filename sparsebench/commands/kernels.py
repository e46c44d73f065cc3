"""sparsebench kernels run | check | baseline: the kernel suite and its regression gate.

Imports nothing heavy at import time (the GPU machine runs this without snakemake/mlflow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub):
    p = sub.add_parser("kernels", help="time sparse kernels against dense; check speed-ups against a baseline")
    ks = p.add_subparsers(dest="kernels_command", required=True, metavar="ACTION")

    r = ks.add_parser("run", help="run the kernel suite under a hardware profile; write the rows as JSON")
    _common(r)
    r.add_argument("--out", required=True, help="results JSON (e.g. results/kernels/<profile>.json)")
    r.set_defaults(func=run)

    c = ks.add_parser("check", help="exit 1 naming each kernel whose speed-up fell below baseline x (1 - tolerance)")
    _common(c)
    c.add_argument("--results", default=None, help="a results JSON to check (default: run the baseline's kernels now)")
    c.add_argument("--baseline", default=None, help="default: hardware/baselines/<profile>.json")
    c.add_argument("--tolerance", type=float, default=None, help="override the baseline's tolerance (0..1)")
    c.add_argument("--out", default=None, help="also write the run the check measured here")
    c.set_defaults(func=check)

    b = ks.add_parser("baseline", help="write a baseline from a results JSON")
    b.add_argument("--results", required=True)
    b.add_argument("--out", required=True, help="e.g. hardware/baselines/<profile>.json")
    b.add_argument("--tolerance", type=float, required=True, help="allowed relative drop of a speed-up (0..1)")
    b.add_argument("--only", default=None, help="keep only case ids containing this substring")
    b.set_defaults(func=baseline)


def _common(p):
    p.add_argument("--profile", required=True, help="hardware profile (hardware/<name>.yaml)")
    p.add_argument("--set", dest="kernel_set", default=None, help="kernel set: small | full (default: the profile's)")
    p.add_argument("--only", default=None, help="run only case ids containing this substring")
    p.add_argument("--seed", type=int, default=0)


def _profile(args):
    from sparsebench.errors import ConfigError
    from sparsebench.hardware import profile

    prof = profile(args.profile, "--profile")
    ok, why = prof.available()
    if not ok:
        raise ConfigError(f"--profile={args.profile!r}: {why}")
    return prof


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args) -> int:
    from sparsebench.kernels.suite import run_suite
    from sparsebench.results import write_atomic

    def save(doc):
        write_atomic(Path(args.out), json.dumps(doc, indent=1) + "\n")

    doc = run_suite(_profile(args), args.kernel_set, args.only, args.seed, log=_log, on_row=save)
    save(doc)
    print(format_table(doc["rows"]))
    print(f"{sum(r['status'] == 'ok' for r in doc['rows'])}/{len(doc['rows'])} kernels ok -> {args.out}")
    return 0


def check(args) -> int:
    from sparsebench.errors import ConfigError
    from sparsebench.kernels.gate import check as gate_check, load_baseline
    from sparsebench.registry import project_root

    path = Path(args.baseline or project_root() / "hardware" / "baselines" / f"{args.profile}.json")
    if not path.is_file():
        raise ConfigError(f"--baseline={str(path)!r} does not exist; make one with `sparsebench kernels baseline`")
    base = load_baseline(path)
    if base.get("stale"):
        print(f"note: baseline {path} is stale (from commit {base['stale'].get('commit', '?')[:8]}): "
              f"{base['stale'].get('reason', '')}")
    if args.only:  # gate only the baseline's kernels whose ids contain one of the substrings
        parts = args.only.split(",")
        base = base | {"kernels": {k: v for k, v in base["kernels"].items() if any(p in k for p in parts)}}
        if not base["kernels"]:
            raise ConfigError(f"--only={args.only!r} matches no kernel of baseline {str(path)!r}")
    if args.results:
        doc = json.loads(Path(args.results).read_text())
    else:
        from sparsebench.kernels.suite import run_suite

        doc = run_suite(_profile(args), args.kernel_set or base.get("kernel_set"), list(base["kernels"]),
                        args.seed, log=_log)
        if args.out:
            from sparsebench.results import write_atomic

            write_atomic(Path(args.out), json.dumps(doc, indent=1) + "\n")
    failures = gate_check(doc, base, args.tolerance)
    if failures:
        print(f"kernel gate FAILED for profile {args.profile!r} ({len(failures)} of {len(base['kernels'])} kernels):")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"kernel gate passed for profile {args.profile!r}: {len(base['kernels'])} kernels at or above "
          f"baseline x (1 - tolerance)")
    return 0


def baseline(args) -> int:
    from sparsebench.kernels.gate import make_baseline
    from sparsebench.results import write_atomic

    doc = json.loads(Path(args.results).read_text())
    ids = [r["id"] for r in doc["rows"] if args.only in r["id"]] if args.only else None
    base = make_baseline(doc, args.tolerance, ids)
    write_atomic(Path(args.out), json.dumps(base, indent=1, sort_keys=True) + "\n")
    print(f"baseline of {len(base['kernels'])} kernels -> {args.out}")
    return 0


def format_table(rows: list[dict]) -> str:
    """One line per row: dense (cuBLAS / SDPA) and sparse time, speed-up over it, and for GEMVs also our
    Triton dense GEMV's time and the speed-up over the faster of the two dense GEMVs."""
    lines = [f"{'kernel':<58} {'dense ms':>9} {'sparse ms':>9} {'speedup':>7} {'ideal':>6} {'%peak':>6} "
             f"{'triton dense ms':>15} {'vs best dense':>13}"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['id']:<58} {r['status']}: {r.get('reason', '')[:60]}")
            continue
        frac = max(r.get("sparse_frac_peak_flops") or 0, r.get("sparse_frac_peak_bandwidth") or 0)
        best = (f" {r['dense_triton_ms']:>15.4f} {r['speedup_best_dense']:>12.2f}x"
                if r.get("dense_triton_ms") is not None else "")
        lines.append(f"{r['id']:<58} {r['dense_ms']:>9.4f} {r['sparse_ms']:>9.4f} {r['speedup']:>6.2f}x "
                     f"{r['ideal_speedup']:>5.2f}x {100 * frac:>5.1f}%{best}")
    return "\n".join(lines)
