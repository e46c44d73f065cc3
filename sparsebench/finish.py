"""What the terminal shows: one line per finished job, and when the workflow ends, where the report is,
how to open MLflow and the claims tally."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections import Counter
from pathlib import Path
from typing import IO


def finish_message(results_dir: str | Path, reports_dir: str | Path) -> str:
    results_dir, reports_dir = Path(results_dir).resolve(), Path(reports_dir).resolve()
    lines = ["", "sparsebench: done."]
    summary = results_dir / "summary.csv"
    if summary.exists():
        import pandas as pd

        df = pd.read_csv(summary)
        invalid = int((df["status"] == "invalid").sum()) if "status" in df else 0
        lines.append(f"  results: {len(df)} in {summary}" + (f" ({invalid} invalid: see the report)" if invalid else ""))
    report = reports_dir / "index.html"
    if report.exists():
        lines.append(f"  report:  {report}")
    claims = reports_dir / "claims.json"
    if claims.exists():
        try:
            counts = Counter(v.get("status", "?") for v in json.loads(claims.read_text()))
            lines.append("  claims:  " + ", ".join(f"{n} {status}" for status, n in counts.most_common()))
        except (ValueError, AttributeError):
            pass
    where = "the address it prints"
    if (results_dir / "mlflow.db").exists():
        from sparsebench.tracking import default_tracking_uri, ui_url

        where = ui_url(default_tracking_uri(results_dir))
    lines.append(f"  MLflow:  `make ui` (or `sparsebench ui --results {results_dir}`), then open {where}")
    return "\n".join(lines)


def _num(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def finished_line(result: dict, path: str | Path) -> str:
    """One line for a finished job: ``done <task> <method> <target> seed <s> on <hardware>: <metric> <value>
    [lo, hi] (95 %) in <t> s -> <result.json>``. The metric is the task's main one (first declared), the
    interval the summary's (``ci_lo``/``ci_hi``, :func:`sparsebench.stats.interval_columns`)."""
    from sparsebench.stats import interval_columns

    job = result["job"]
    head = f"{job['task']} {job['method']} {result.get('target_label', '')} seed {job['seed']} on {job['hardware']}"
    total = (result.get("timings") or {}).get("total_s")
    took = f" in {total:.1f} s" if isinstance(total, (int, float)) else ""
    if result.get("status") == "invalid":
        return f"INVALID {head}: {result.get('invalid_reason', '')}{took} -> {path}"
    metrics = result.get("metrics") or {}
    numeric = [m for m, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    main = next((m for m in (result.get("metric_info") or {}) if m in numeric), numeric[0] if numeric else None)
    if main is None:
        return f"done {head}: no metric{took} -> {path}"
    value = f"{main} {_num(float(metrics[main]))}"
    ci = interval_columns(result)
    value += f" [{_num(ci[f'ci_lo.{main}'])}, {_num(ci[f'ci_hi.{main}'])}] (95 %)" if f"ci_lo.{main}" in ci \
        else " (no interval)"
    return f"done {head}: {value}{took} -> {path}"


class FinishedJobLines(logging.Handler):
    """Snakemake's log, listened to in the workflow's process: when a ``run_job`` finishes, print its
    :func:`finished_line` (Snakemake itself says only "Finished jobid: N"). The job's own output stays in
    its log file, so the line is printed here, from the result it wrote."""

    RULE = "run_job"

    def __init__(self, stream: IO | None = None):
        super().__init__(logging.INFO)
        self.stream = stream
        self.outputs: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        from snakemake.logging import LogEvent

        event = getattr(record, "event", None)
        try:
            if event == LogEvent.JOB_INFO and getattr(record, "rule_name", None) == self.RULE:
                outputs = getattr(record, "output", None) or []
                if outputs:
                    self.outputs[record.jobid] = str(outputs[0])
            elif event == LogEvent.JOB_FINISHED and record.job_id in self.outputs:
                path = self.outputs.pop(record.job_id)
                from sparsebench.results import read_result

                stream = self.stream if self.stream is not None else sys.stderr
                print(finished_line(read_result(Path(path)), path), file=stream, flush=True)
        except Exception as exc:  # noqa: BLE001 - a line we cannot print must never stop the workflow
            stream = self.stream if self.stream is not None else sys.stderr
            print(f"sparsebench: no summary line for job {getattr(record, 'job_id', '?')}: {exc}", file=stream)


def listen_to_snakemake() -> FinishedJobLines:
    """Attach :class:`FinishedJobLines` to Snakemake's logger (once per process)."""
    from snakemake.logging import logger

    for h in logger.handlers:
        if isinstance(h, FinishedJobLines):
            return h
    handler = FinishedJobLines()
    logger.addHandler(handler)
    return handler
