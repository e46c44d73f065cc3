"""Assemble the HTML report (self-contained: figures inlined) plus PNG and PDF files."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import pandas as pd

from sparsebench.report.figures import all_figures
from sparsebench.results import find_results, read_result, summarize, write_atomic


def _primary_metrics(results_dir: Path) -> dict[str, str]:
    """task -> its primary metric name (the first in result['metric_info'])."""
    out = {}
    for p in find_results(results_dir):
        r = read_result(p)
        out.setdefault(r["job"]["task"], next(iter(r.get("metric_info", {})), None))
    return out


def load_summary(results_dir: Path) -> pd.DataFrame:
    csv = Path(results_dir) / "summary.csv"
    df = pd.read_csv(csv) if csv.exists() else summarize(find_results(results_dir))
    prim = _primary_metrics(results_dir)
    df["primary_metric"] = df["task"].map(prim)
    return df


def metric_table(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """Methods x targets of the task's primary metric (mean over seeds), like the SparseGPT/Wanda tables."""
    tdf = df[df["task"] == task]
    metric = tdf["primary_metric"].iloc[0]
    tdf = tdf.assign(col=tdf.apply(lambda r: "dense" if r["method"] == "dense" else r["target_label"], axis=1))
    order = ["dense"] + [c for c in tdf.sort_values(["pattern", "target_sparsity"])["col"].unique() if c != "dense"]
    table = tdf.pivot_table(index="method", columns="col", values=f"metric.{metric}", aggfunc="mean")
    return table.reindex(columns=[c for c in order if c in table.columns])


def _fig_html(name: str, fig, out_dir: Path) -> str:
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / f"{name}.png", dpi=150)
    fig.savefig(fig_dir / f"{name}.pdf")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def build_report(results_dir: Path, out_dir: Path, only_figure: str | None = None) -> Path:
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    df = load_summary(results_dir)
    FIGURES = all_figures()
    if only_figure is not None:
        if only_figure not in FIGURES:
            raise KeyError(f"--figure {only_figure!r} is not a figure; allowed: {', '.join(FIGURES)}")
        for name, fig in FIGURES[only_figure](df).items():
            _fig_html(name, fig, out_dir)
            plt.close(fig)
        return out_dir / "figures"
    parts = ["<h1>sparsebench report</h1>", f"<p>{len(df)} results from <code>{html.escape(str(results_dir))}</code>.</p>"]
    for builder in FIGURES.values():
        for name, fig in builder(df).items():
            parts.append(_fig_html(name, fig, out_dir))
            plt.close(fig)
    for task in sorted(df["task"].unique()):
        metric = df[df["task"] == task]["primary_metric"].iloc[0]
        parts.append(f"<h2>{html.escape(task)}: {html.escape(str(metric))} by method and target</h2>")
        parts.append(metric_table(df, task).to_html(float_format=lambda v: f"{v:.2f}", na_rep="", border=0,
                                                    classes="results"))
    env_cols = [c for c in ("commit", "data_hash") if c in df.columns]
    first = read_result(find_results(results_dir)[0]) if len(df) else {}
    env = first.get("environment", {})
    parts.append("<h2>Environment</h2><pre>" + html.escape(json.dumps(
        {k: env.get(k) for k in ("packages", "python", "cpu", "threads", "gpu", "commit", "dirty")}, indent=2)) + "</pre>")
    if env_cols:
        parts.append("<p>Distinct commits: " + html.escape(", ".join(map(str, df["commit"].dropna().unique()))) + "</p>")
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto}figure img{max-width:100%}"
             "table.results{border-collapse:collapse}table.results td,table.results th{padding:4px 10px;"
             "border-bottom:1px solid #ddd;text-align:right}")
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>sparsebench report</title><style>{style}</style>" \
           f"</head><body>{''.join(parts)}<p><small>generated in {time.perf_counter() - t0:.1f} s</small></p></body></html>"
    out = out_dir / "index.html"
    write_atomic(out, page)
    return out
