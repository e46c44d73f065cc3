"""sparsebench report: the HTML report, figures and claims scorecard from stored results."""

from __future__ import annotations

import time
from pathlib import Path


def register(sub):
    p = sub.add_parser("report", help="build reports/index.html, figures (PNG, PDF) and the claims scorecard "
                                      "from results/ (reruns nothing)")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--out", default="reports", help="output directory (default: reports)")
    p.add_argument("--claims", default=None, help="claims directory (default: <project>/claims)")
    p.add_argument("--figure", default=None, metavar="NAME",
                   help="regenerate only this figure (a builder such as quality_vs_sparsity, or one figure's name)")
    p.add_argument("--list-figures", action="store_true", help="list the figure builders and exit")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsebench.report import build_figure, build_report

    if args.list_figures:
        from sparsebench.report.figures import catalog

        for b in catalog().values():
            print(f"{b.name:<24} {b.family:<18} ({b.module}.py)")
        return 0
    t0 = time.perf_counter()
    if args.figure:
        for path in build_figure(Path(args.results), Path(args.out), args.figure):
            print(f"figure -> {path} (+ .pdf)")
    else:
        out = build_report(Path(args.results), Path(args.out), claims_dir=Path(args.claims) if args.claims else None)
        print(f"report -> {out}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0
