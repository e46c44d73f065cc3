"""sparsebench aggregate / track / ui: gather results into one table; log them to MLflow; serve its UI."""

from __future__ import annotations

from pathlib import Path


def register(sub):
    p = sub.add_parser("aggregate", help="gather every result.json into results/summary.csv (+ .parquet)")
    p.add_argument("--results", default="results", help="results directory")
    p.add_argument("--out", default=None, help="CSV path (default <results>/summary.csv)")
    p.add_argument("--kernels", default=None,
                   help="kernel results (<profile>.json) for the latency_ms.<profile> columns (default <results>/kernels)")
    p.add_argument("--no-committed-kernels", action="store_true",
                   help="do not fall back to hardware/baselines/<profile>_measurements.json for profiles not run here")
    p.set_defaults(func=aggregate)
    p = sub.add_parser("track", help="log every result to MLflow (one run per result, never twice)")
    p.add_argument("--results", default="results")
    p.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or sqlite:///<results>/mlflow.db")
    p.add_argument("--out", default=None, help="write the run-id -> MLflow-run table here (CSV)")
    p.add_argument("--reports", default=None,
                   help="report directory whose index.html and figures become artifacts of each task's summary run")
    p.set_defaults(func=track)
    p = sub.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 and print the address of the runs")
    p.add_argument("--results", default="results")
    p.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI or sqlite:///<results>/mlflow.db")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=ui)


def aggregate(args) -> int:
    from sparsebench.latency import add_latency_columns, committed_measurements_dir
    from sparsebench.results import find_results, summarize, write_summary

    paths = find_results(Path(args.results))
    committed = None if args.no_committed_kernels else committed_measurements_dir()
    df = add_latency_columns(summarize(paths), Path(args.kernels or Path(args.results) / "kernels"),
                             committed_dir=committed)
    written = write_summary(df, Path(args.out or Path(args.results) / "summary.csv"))
    print(f"{len(df)} results -> {', '.join(map(str, written))}")
    return 0


def track(args) -> int:
    from sparsebench.tracking import track_results

    table = track_results(Path(args.results), args.tracking_uri, Path(args.out) if args.out else None,
                          Path(args.reports) if args.reports else None)
    new = int(table["created"].sum()) if len(table) else 0
    updated = int(table["updated"].sum()) if len(table) else 0
    print(f"MLflow: {len(table)} results, {new} new runs, {updated} updated, {len(table) - new - updated} already tracked")
    return 0


def ui(args) -> int:
    import os
    import shutil
    import sys

    from sparsebench.tracking import default_tracking_uri, ui_url

    uri = default_tracking_uri(Path(args.results), args.tracking_uri)
    base = f"http://127.0.0.1:{args.port}"
    print(f"MLflow UI: open {ui_url(uri, base)}  (the runs; Ctrl-C stops the server)", flush=True)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or shutil.which("mlflow") or "mlflow"
    os.execvp(mlflow, [mlflow, "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(args.port)])
