"""sparsebench report: the HTML report and figures from stored results."""

from __future__ import annotations

from pathlib import Path


def register(sub):
    p = sub.add_parser("report", help="build reports/index.html and figures from results/ (reruns nothing)")
    p.add_argument("--results", default="results")
    p.add_argument("--out", default="reports")
    p.add_argument("--figure", default=None, help="regenerate only this figure")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsebench.report import build_report

    out = build_report(Path(args.results), Path(args.out), args.figure)
    print(f"report -> {out}")
    return 0
