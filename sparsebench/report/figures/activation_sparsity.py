"""Figures of the activation-sparsity family: perplexity versus measured activation sparsity.

In the style of TEAL (arXiv:2408.14690, Fig. 1/Table 3) and CHESS (arXiv:2409.01366):
the x axis is the *measured* model-wide activation sparsity (the fraction of weight
entries the zero activations let a kernel skip, weighted by layer size), not the
requested level, because methods that sparsify fewer tensors (CHESS leaves k, v,
gate and up inputs dense) reach less model-wide sparsity at the same level. Each
point is labelled with its target. The dense model is the horizontal line.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sparsebench.report.style import method_style  # noqa: E402


def quality_vs_activation_sparsity(df: pd.DataFrame) -> dict:
    figs = {}
    act = df[df["family"] == "activation_sparsity"]
    for task, tdf in act.groupby("task"):
        metric = tdf["primary_metric"].iloc[0]
        col = f"metric.{metric}"
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        dense = df[(df["task"] == task) & (df["method"] == "dense")]
        if not dense.empty:
            ax.axhline(dense[col].mean(), color="black", ls="--", lw=1, label="dense")
        for method, mdf in tdf.groupby("method"):
            st = method_style(method)
            pts = mdf.groupby("target_sparsity")[[col, "measured_sparsity"]].mean().sort_index()
            ax.plot(pts["measured_sparsity"] * 100, pts[col], color=st["color"], marker=st["marker"], label=method)
            for target, row in pts.iterrows():
                ax.annotate(f"{target * 100:g}%", (row["measured_sparsity"] * 100, row[col]), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color=st["color"])
        ax.set_xlabel("measured activation sparsity, model-wide (% of weight entries skipped)")
        ax.set_ylabel(metric)
        ax.set_title(f"{task}: {metric} vs activation sparsity (labels: target level)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs[f"activation_sparsity_{task}"] = fig
    return figs


FIGURES = {"quality_vs_activation_sparsity": quality_vs_activation_sparsity}
