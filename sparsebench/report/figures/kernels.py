"""Kernel figures: speed-up over dense versus density with the ideal line (per hardware profile), and
the accuracy-versus-latency Pareto front (per task and profile).

Kernel results are read from ``<results>/kernels/<profile>.json`` (the results
directory is the one holding the summary's result files) and, for profiles not
measured there, from the committed ``hardware/baselines/<profile>_measurements.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

LOWER_IS_BETTER = ("perplexity", "loss", "error")
PANELS = [("csr", "CSR (unstructured)"), ("bsr", "BSR 32x32 blocks"), ("semi_structured", "2:4 cuSPARSELt"),
          ("gemv_2_4", "2:4 Triton GEMV"), ("act_sparse_gemv", "activation-sparse Triton GEMV (masked rows)"),
          ("act_sparse_gemv_compact", "activation-sparse Triton GEMV (packed non-zeros)"),
          ("act_sparse_gather", "activation-sparse gather (stock)"), ("flex_attention", "FlexAttention block-sparse"),
          ("block_attention", "block-sparse attention (our Triton)")]


def _results_dir(df: pd.DataFrame) -> Path:
    paths = df["result_path"].dropna() if "result_path" in df.columns else []
    for p in paths:
        parts = Path(p).parts
        if "runs" in parts:
            return Path(*parts[: len(parts) - 1 - parts[::-1].index("runs")])
    return Path("results")


def kernel_results(df: pd.DataFrame) -> dict[str, dict]:
    from sparsebench.registry import project_root

    found = {}
    for path in sorted((_results_dir(df) / "kernels").glob("*.json")):
        found[path.stem] = json.loads(path.read_text())
    for path in sorted((project_root() / "hardware" / "baselines").glob("*_measurements.json")):
        found.setdefault(path.stem.removesuffix("_measurements"), json.loads(path.read_text()))
    return found


def speedup_figure(doc: dict):
    rows = pd.DataFrame([r for r in doc["rows"] if r.get("status") == "ok"])
    panels = [(op, title) for op, title in PANELS if not rows.empty and op in set(rows["op"])]
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    dens = np.linspace(0.01, 1.0, 200)
    for ax, (op, title) in zip(axes.flat, panels):
        sub = rows[rows["op"] == op]
        ax.plot(dens, 1 / dens, color="black", ls="--", lw=1, label="ideal 1/density")
        ax.axhline(1.0, color="grey", lw=0.8)
        for (model, layer, tokens), g in sub.groupby(["model", "layer", "tokens"]):
            g = g.sort_values("density")
            style = dict(marker="o", ms=3, lw=1, label=f"{model}.{layer} t={tokens}")
            if len(g) == 1:
                ax.plot(g["density"], g["speedup"], ls="none", **{k: v for k, v in style.items() if k != "lw"})
            else:
                ax.plot(g["density"], g["speedup"], **style)
        ax.set_yscale("log")
        ax.set_ylim(0.01, max(30.0, float(sub["speedup"].max()) * 1.5))
        ax.set_xlim(0, 1.05)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("density (kept fraction)")
        ax.set_ylabel("speed-up over dense")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=5, ncol=2)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    stale = f"\nSTALE: from commit {doc['stale']['commit'][:8]}, before the current kernels" if doc.get("stale") else ""
    fig.suptitle(f"{doc['profile']} ({doc.get('device')}, {doc.get('dtype')}): sparse kernel speed-up vs density"
                 + stale)
    fig.tight_layout()
    return fig


def kernel_speedup_vs_density(df: pd.DataFrame) -> dict:
    figs = {}
    for profile, doc in kernel_results(df).items():
        fig = speedup_figure(doc)
        if fig is not None:
            figs[f"kernel_speedup_vs_density_{profile}"] = fig
    return figs


def pareto_front(points: pd.DataFrame, metric: str, lower_better: bool) -> pd.DataFrame:
    """The points no other point beats on both latency (lower) and the metric."""
    pts = points.sort_values(["latency", metric], ascending=[True, lower_better])
    best, keep = None, []
    for idx, r in pts.iterrows():
        v = r[metric]
        if best is None or (v < best if lower_better else v > best):
            best = v
            keep.append(idx)
    return pts.loc[keep]


def accuracy_vs_latency(df: pd.DataFrame) -> dict:
    figs = {}
    lat_cols = [c for c in df.columns if c.startswith("latency_ms.")]
    for task, tdf in df.groupby("task"):
        metric = tdf["primary_metric"].iloc[0]
        col = f"metric.{metric}"
        if col not in tdf.columns:
            continue
        lower = any(w in str(metric) for w in LOWER_IS_BETTER)
        for lat in lat_cols:
            pts = tdf[["method", "target_label", lat, col]].dropna().rename(columns={lat: "latency"})
            if pts.empty:
                continue
            pts = pts.groupby(["method", "target_label"], as_index=False).mean(numeric_only=True)
            from sparsebench.report.style import method_label, method_style

            fig, ax = plt.subplots(figsize=(6.4, 4.4))
            for method, mdf in pts.groupby("method"):
                st = method_style(method)
                ax.scatter(mdf["latency"], mdf[col], color=st["color"], marker=st["marker"], label=method_label(method))
                for _, r in mdf.iterrows():
                    ax.annotate(r["target_label"], (r["latency"], r[col]), fontsize=6, xytext=(3, 3),
                                textcoords="offset points")
            front = pareto_front(pts, col, lower)
            ax.step(front["latency"], front[col], where="post", color="black", lw=1, ls=":", label="Pareto front")
            if metric == "perplexity":
                ax.set_yscale("log")
            profile = lat.split(".", 1)[1]
            source = tdf.get(f"latency_from.{profile}")
            committed = source is not None and str(source.iloc[0]).endswith("_measurements.json")
            ax.set_xlabel(f"estimated decode latency of the linear layers on {profile} (ms/token)"
                          + ("\nfrom the committed kernel measurements (hardware/baselines/)" if committed else ""))
            ax.set_ylabel(f"{metric} ({'lower' if lower else 'higher'} is better)")
            ax.set_title(f"{task}: {metric} vs latency ({profile})")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            figs[f"accuracy_vs_latency_{task}_{profile}"] = fig
    return figs


FIGURES = {"kernel_speedup_vs_density": kernel_speedup_vs_density, "accuracy_vs_latency": accuracy_vs_latency}
