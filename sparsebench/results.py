"""Result files: written atomically, read strictly, gathered into one table."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

from sparsebench.stats import interval_columns

SCHEMA_VERSION = 1
STATUSES = ("ok", "invalid")  # "invalid": a complete result whose numbers must not be used (invalid_reason says why)


class ResultFileError(ValueError):
    """A result file that cannot be used; the message starts with its path and says what to do."""


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_result(path: Path, result: dict) -> None:
    write_atomic(path, json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")


def read_result(path: Path) -> dict:
    path = Path(path)
    redo = "delete it and run the workflow again to recompute that job"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ResultFileError(f"{path}: damaged, not valid JSON ({exc}); {redo}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or data.get("status") not in STATUSES:
        got = (data.get("schema"), data.get("status")) if isinstance(data, dict) else (None, type(data).__name__)
        raise ResultFileError(f"{path}: not a complete sparsebench result (schema {got[0]}, status {got[1]}); {redo}")
    return data


_named: set[str] = set()  # files already reported in this process (report reads the results twice)


def read_results(paths, log=sys.stderr) -> list[tuple[Path, dict]]:
    """Every usable result among ``paths``; each unusable file is named on ``log`` (once) and left out."""
    out = []
    for p in paths:
        try:
            out.append((Path(p), read_result(p)))
        except ResultFileError as exc:
            if log is not None and str(p) not in _named:
                _named.add(str(p))
                print(f"sparsebench: skipping {exc}", file=log, flush=True)
    return out


def invalid_reason(metrics: dict) -> str | None:
    """Why a result's metrics must not be used (a non-finite value), or None when they are all usable."""
    bad = [(k, v) for k, v in (metrics or {}).items()
           if isinstance(v, float) and not math.isfinite(v)]
    if not bad:
        return None
    return "; ".join(f"{k}={v}" for k, v in bad) + (
        ": non-finite metric (the evaluation diverged or overflowed); left out of tables, figures and claims")


def mark_validity(result: dict) -> dict:
    """Set ``status``/``invalid_reason`` from the metrics; a non-finite metric is stored as null (strict JSON)."""
    reason = invalid_reason(result.get("metrics", {}))
    if reason:
        result["status"] = "invalid"
        result["invalid_reason"] = reason
        result["metrics"] = {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                             for k, v in result["metrics"].items()}
    return result


def find_results(results_dir: Path) -> list[Path]:
    """Every complete ``result.json`` under ``results_dir/runs`` (temp files are never matched)."""
    return sorted(Path(results_dir).glob("runs/**/result.json"))


def flatten(result: dict) -> dict:
    """One row per result for the summary table."""
    job = result["job"]
    row = {
        "run_id": result["run_id"],
        "task": job["task"],
        "family": job["family"],
        "method": job["method"],
        "pattern": job["target"]["pattern"],
        "target_sparsity": job["target"]["sparsity"],
        "target_label": result.get("target_label", ""),
        "seed": job["seed"],
        "hardware": job["hardware"],
        "measured_sparsity": result.get("sparsity", {}).get("measured"),
        "status": result.get("status", "ok"),
        "invalid_reason": result.get("invalid_reason", ""),
    }
    for k, v in result.get("metrics", {}).items():
        row[f"metric.{k}"] = v
    row.update(interval_columns(result))  # ci_lo.<metric>, ci_hi.<metric>: 95 % interval from its samples
    for k, v in result.get("timings", {}).items():
        row[f"time.{k}"] = v
    for k, v in result.get("memory", {}).items():
        row[f"memory.{k}"] = v
    for k, v in job.get("method_params", {}).items():
        row[f"param.{k}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
    env = result.get("environment", {})
    row["commit"] = env.get("commit")
    data = result.get("data", {})
    row["data_hash"] = data.get("eval_tokens_sha256") or data.get("test_sha256")
    row["result_path"] = result.get("_path")
    return row


def summarize(paths: list[Path]):
    import pandas as pd

    rows = []
    for p, r in read_results(paths):
        r["_path"] = str(p)
        rows.append(flatten(r))
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(["task", "family", "method", "pattern", "target_sparsity", "seed", "hardware"]).reset_index(drop=True)
    return df


def write_summary(df, csv_path: Path) -> list[Path]:
    """Write the summary as CSV (and Parquet beside it), atomically."""
    csv_path = Path(csv_path)
    write_atomic(csv_path, df.to_csv(index=False))
    written = [csv_path]
    pq = csv_path.with_suffix(".parquet")
    tmp = pq.with_name(f".{pq.name}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, pq)
    written.append(pq)
    return written
