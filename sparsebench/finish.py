"""What the terminal shows when the workflow ends: where the report is, how to open MLflow, the claims tally."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


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
    db = results_dir / "mlflow.db"
    lines.append(f"  MLflow:  `make ui` (or `mlflow ui --backend-store-uri sqlite:///{db}`), "
                 "then open http://127.0.0.1:5000")
    return "\n".join(lines)
