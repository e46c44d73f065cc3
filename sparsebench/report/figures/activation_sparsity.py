"""Figures of the activation-sparsity family: perplexity versus measured activation sparsity, and the
Lazy Neuron analysis (fraction of non-zero MLP activations per layer, ``mlp-activation-stats``).

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

import numpy as np  # noqa: E402

from sparsebench.report.curves import INTERVAL_LABEL, draw_interval, interval_of, interval_stats  # noqa: E402
from sparsebench.report.style import method_label, method_style  # noqa: E402
from sparsebench.report.summary import task_title  # noqa: E402


def quality_vs_activation_sparsity(df: pd.DataFrame) -> dict:
    figs = {}
    act = df[(df["family"] == "activation_sparsity") & (df["target_sparsity"] > 0)]  # sparsity 0: the dense line
    for task, tdf in act.groupby("task"):
        metric = tdf["primary_metric"].iloc[0]
        col = f"metric.{metric}"
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        dense = df[(df["task"] == task) & (df["method"] == "dense")]
        drew = False
        if not dense.empty:
            mean, lo, hi, _ = interval_of(dense, col)
            ax.axhline(mean, color="black", ls="--", lw=1, label="dense")
            if np.isfinite(lo) and np.isfinite(hi):
                ax.axhspan(lo, hi, color="black", alpha=0.07, lw=0)
        for method, mdf in tdf.groupby("method"):
            st = method_style(method)
            pts = mdf.groupby("target_sparsity")[[col, "measured_sparsity"]].mean().sort_index()
            ax.plot(pts["measured_sparsity"] * 100, pts[col], color=st["color"], marker=st["marker"], label=method_label(method))
            iv = interval_stats(mdf, "target_sparsity", col).reindex(pts.index)
            drew |= draw_interval(ax, pts["measured_sparsity"] * 100, iv, st["color"], band=False)
            for target, row in pts.iterrows():
                ax.annotate(f"{target * 100:g}%", (row["measured_sparsity"] * 100, row[col]), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color=st["color"])
        ax.set_xlabel("measured activation sparsity, model-wide (% of weight entries skipped)")
        ax.set_ylabel(metric)
        ax.set_title(f"{task_title(task)}\n{metric} vs activation sparsity (labels: target level)"
                     + (f"\n{INTERVAL_LABEL}" if drew else ""), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs[f"activation_sparsity_{task}"] = fig
    return figs


# the Lazy Neuron paper's headline (arXiv:2210.06313): non-zero MLP activations of ReLU Transformers
LAZY_NEURON = {"T5-Base (paper)": 0.030, "ViT-B16 (paper)": 0.063}
SERIES = [("nonzero", "non-zero (the paper's measure)", "-"),
          ("positive", "positive (non-zero if the activation were ReLU)", "--")]


def _per_layer(row) -> list[dict]:
    from pathlib import Path

    from sparsebench.results import read_result

    path = row.get("result_path")
    if not isinstance(path, str) or not Path(path).exists():
        return []
    return read_result(Path(path)).get("extra", {}).get("activation", {}).get("method", {}).get("layers", [])


def mlp_activation_stats(df: pd.DataFrame) -> dict:
    """Per block: fraction of MLP activations that are non-zero, positive, and above small magnitudes."""
    figs = {}
    if "metric.mlp_nonzero_fraction" not in df.columns:
        return figs
    rows = df[df["metric.mlp_nonzero_fraction"].notna()]
    for task, tdf in rows.groupby("task"):
        layers = _per_layer(tdf.iloc[0])
        if not layers:
            continue
        blocks = [lay["block"] for lay in layers]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for key, label, ls in SERIES:
            ax.plot(blocks, [lay[key] * 100 for lay in layers], ls=ls, marker="o", ms=3, label=label)
        for m in layers[0]["above"]:
            ax.plot(blocks, [lay["above"][m] * 100 for lay in layers], ls=":", marker=".", label=f"|a| > {m}")
        for i, (name, value) in enumerate(LAZY_NEURON.items()):
            ax.axhline(value * 100, color="grey", lw=0.8, ls=["-.", (0, (1, 3))][i], label=name)
        ax.set_xlabel("decoder block")
        ax.set_ylabel("% of MLP activations (act_fn output)")
        ax.set_ylim(0, 102)
        ax.set_title(f"{task_title(task)}\nLazy Neuron statistics of the MLP activations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center right")
        fig.tight_layout()
        figs[f"mlp_activation_stats_{task}"] = fig
    return figs


FIGURES = {"quality_vs_activation_sparsity": quality_vs_activation_sparsity,
           "mlp_activation_stats": mlp_activation_stats}
