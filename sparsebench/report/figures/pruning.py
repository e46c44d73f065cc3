"""Figures of the pruning family (see the package docstring for the contract)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sparsebench.report.curves import INTERVAL_LABEL, plot_seed_curve  # noqa: E402
from sparsebench.report.style import method_order, method_style  # noqa: E402


def quality_vs_sparsity(df: pd.DataFrame) -> dict:
    """Primary metric versus sparsity per method, one panel per task (unstructured targets as lines,
    N:M targets as hollow markers at their sparsity, dense as a horizontal line)."""
    figs = {}
    pruning = df[df["family"] == "pruning"]
    for task, tdf in pruning.groupby("task"):
        metric = tdf["primary_metric"].iloc[0]
        col = f"metric.{metric}"
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        dense = tdf[tdf["method"] == "dense"]
        if not dense.empty:
            ax.axhline(dense[col].mean(), color="black", ls="--", lw=1, label="dense")
        shaded = False
        for method in method_order(tdf["method"]):
            if method == "dense":
                continue
            mdf = tdf[tdf["method"] == method]
            st = method_style(method)
            uns = mdf[mdf["pattern"] == "unstructured"]
            shaded |= plot_seed_curve(ax, uns, "target_sparsity", col, method, 100)
            nm = mdf[mdf["pattern"] != "unstructured"].groupby(["pattern", "target_sparsity"])[col].mean()
            for i, ((pattern, s), v) in enumerate(nm.items()):
                label = method if uns.empty and i == 0 else None  # N:M-only methods still get a legend entry
                ax.plot([s * 100], [v], ls="none", marker=st["marker"], mfc="none", mec=st["color"], ms=9, label=label)
                ax.annotate(pattern, (s * 100, v), textcoords="offset points", xytext=(6, 0), fontsize=7,
                            color=st["color"])
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel(metric + (" (log scale)" if metric == "perplexity" else ""))
        if metric == "perplexity":
            ax.set_yscale("log")
        ax.set_title(f"{task}: {metric} vs sparsity (hollow: N:M)" + (f"\n{INTERVAL_LABEL}" if shaded else ""),
                     fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs[f"quality_vs_sparsity_{task}"] = fig
    return figs


FIGURES = {"quality_vs_sparsity": quality_vs_sparsity}
