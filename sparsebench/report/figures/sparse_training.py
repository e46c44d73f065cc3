"""Figures of the sparse-training family: accuracy vs sparsity with 95 % seed intervals, the same
numbers as a table, and training FLOPs relative to dense (see the package docstring for the contract).

The interval is the two-sided 95 % Student-t interval of the mean over seeds
(mean +- t_{0.975, n-1} s / sqrt(n)); with one seed it is not drawn. The x axis
is the sparsity on a log(1 - s) scale so that 90, 95 and 98 % do not crowd together.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sparsebench.report.style import method_label, method_style  # noqa: E402
from sparsebench.report.summary import task_title  # noqa: E402

FAMILY = "sparse_training"


def t_quantile(n: int) -> float:
    """t_{0.975, n-1}: the half-width factor of a two-sided 95 % interval from n samples."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else float("nan")


def seed_intervals(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """Mean, 95 % half-width and seed count of ``col`` per (task, method, pattern, target)."""
    keys = ["task", "method", "pattern", "target_sparsity", "target_label"]
    g = df.groupby(keys)[col]
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["half_width"] = [t_quantile(n) * s / math.sqrt(n) if n > 1 else float("nan")
                         for n, s in zip(out["n"], out["std"])]
    return out


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["family"] == FAMILY] if "family" in df.columns else df.iloc[0:0]


def _x(s):
    return -np.log10(1.0 - np.asarray(s, dtype=float))


def accuracy_vs_sparsity(df: pd.DataFrame) -> dict:
    figs = {}
    for task, tdf in _rows(df).groupby("task"):
        metric = tdf["primary_metric"].iloc[0]
        stats = seed_intervals(tdf, f"metric.{metric}")
        fig, ax = plt.subplots(figsize=(7.2, 4.8))
        dense = stats[stats["target_sparsity"] == 0]
        for _, r in dense.iterrows():
            ax.axhline(r["mean"], color="black", ls="--", lw=1, label=f"{r['method']} (dense)")
            if not math.isnan(r["half_width"]):
                ax.axhspan(r["mean"] - r["half_width"], r["mean"] + r["half_width"], color="black", alpha=0.08)
        sparse = stats[stats["target_sparsity"] > 0]
        for method, mdf in sparse.groupby("method"):
            st = method_style(method)
            uns = mdf[mdf["pattern"] == "unstructured"].sort_values("target_sparsity")
            if not uns.empty:
                ax.errorbar(_x(uns["target_sparsity"]), uns["mean"], yerr=uns["half_width"].fillna(0),
                            color=st["color"], marker=st["marker"], ms=4, capsize=3, lw=1.2, label=method_label(method))
            for _, r in mdf[mdf["pattern"] != "unstructured"].iterrows():
                ax.errorbar(_x([r["target_sparsity"]]), [r["mean"]], yerr=[0 if math.isnan(r["half_width"])
                            else r["half_width"]], ls="none", marker=st["marker"], mfc="none", mec=st["color"],
                            color=st["color"], ms=8, capsize=3, label=f"{method} ({r['pattern']})")
        ticks = sorted(set(sparse["target_sparsity"]))
        ax.set_xticks(_x(ticks))
        ax.set_xticklabels([f"{s * 100:g}" for s in ticks])
        ax.set_xlabel("sparsity (%) [log(1 - s) scale]")
        ax.set_ylabel(f"{metric} (mean over seeds, 95 % interval)")
        ax.set_title(f"{task_title(task)}\n{metric} vs sparsity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        figs[f"sparse_training_accuracy_{task}"] = fig
    return figs


def interval_table(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """Methods x targets, each cell 'mean +- half-width (n)' of the task's primary metric."""
    tdf = _rows(df)
    tdf = tdf[tdf["task"] == task]
    metric = tdf["primary_metric"].iloc[0]
    stats = seed_intervals(tdf, f"metric.{metric}")
    stats["col"] = [("dense" if s == 0 else label) for s, label in zip(stats["target_sparsity"], stats["target_label"])]
    stats["cell"] = [f"{m:.2f}" + ("" if math.isnan(h) else f" ± {h:.2f}") + f" ({n})"
                     for m, h, n in zip(stats["mean"], stats["half_width"], stats["n"])]
    order = ["dense"] + [c for c in stats.sort_values(["pattern", "target_sparsity"])["col"].unique() if c != "dense"]
    table = stats.pivot_table(index="method", columns="col", values="cell", aggfunc="first")
    return table.reindex(columns=[c for c in order if c in table.columns]).fillna("")


def accuracy_table(df: pd.DataFrame) -> dict:
    figs = {}
    for task in sorted(_rows(df)["task"].unique()):
        table = interval_table(df, task)
        fig, ax = plt.subplots(figsize=(1.6 + 1.45 * len(table.columns), 0.6 + 0.3 * (len(table) + 1)))
        ax.axis("off")
        tab = ax.table(cellText=table.values, rowLabels=table.index, colLabels=list(table.columns), loc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(7)
        ax.set_title(f"{task_title(task)}\nmean ± 95 % interval (seeds)", fontsize=9)
        fig.tight_layout()
        figs[f"sparse_training_table_{task}"] = fig
    return figs


def training_flops(df: pd.DataFrame) -> dict:
    """Training FLOPs relative to dense training per method and sparsity (RigL paper's accounting)."""
    figs = {}
    col = "metric.train_flops_rel_dense"
    rows = _rows(df)
    if col not in rows.columns:
        return figs
    for task, tdf in rows.groupby("task"):
        stats = tdf.groupby(["method", "target_label", "target_sparsity"])[col].mean().reset_index()
        labels = [lb for _, lb in sorted({(s, lb) for s, lb in zip(stats["target_sparsity"], stats["target_label"])})]
        methods = sorted(stats["method"].unique())
        fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * len(methods) * len(labels) / 3), 4.4))
        width = 0.8 / max(len(labels), 1)
        for i, label in enumerate(labels):
            sub = stats[stats["target_label"] == label].set_index("method").reindex(methods)
            ax.bar(np.arange(len(methods)) + i * width, sub[col].values, width, label=label)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(methods)) + 0.4 - width / 2)
        ax.set_xticklabels(methods, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("training FLOPs / dense training")
        ax.set_yscale("log")
        ax.set_title(f"{task_title(task)}\ntraining FLOPs relative to dense")
        ax.legend(fontsize=7, title="target", ncol=3)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        figs[f"sparse_training_flops_{task}"] = fig
    return figs


FIGURES = {
    "sparse_training_accuracy": accuracy_vs_sparsity,
    "sparse_training_table": accuracy_table,
    "sparse_training_flops": training_flops,
}
