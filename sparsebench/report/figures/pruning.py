"""Figures of the pruning family (see the package docstring for the contract)."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sparsebench.report.curves import INTERVAL_LABEL, interval_of, plot_seed_curve  # noqa: E402
from sparsebench.report.style import method_label, method_order, method_style  # noqa: E402
from sparsebench.report.summary import task_title  # noqa: E402


def quality_vs_sparsity(df: pd.DataFrame) -> dict:
    """Primary metric versus sparsity per method, one panel per task (unstructured targets as lines,
    N:M targets as hollow markers at their sparsity, dense as a horizontal line)."""
    figs = {}
    pruning = df[df["family"] == "pruning"]
    for task, tdf in pruning.groupby("task"):
        metric = tdf["primary_metric"].iloc[0]
        col = f"metric.{metric}"
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        shaded = _sparsity_panel(ax, tdf, col)
        ax.set_ylabel(metric + (" (log scale)" if metric == "perplexity" else ""))
        if metric == "perplexity":
            ax.set_yscale("log")
        ax.set_title(f"{task_title(task)}\n{metric} vs sparsity (hollow: N:M)"
                     + (f"\n{textwrap.fill(INTERVAL_LABEL, 80)}" if shaded else ""), fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs[f"quality_vs_sparsity_{task}"] = fig
    return figs


TABLE_COLUMNS = ("50%", "4:8", "2:4", "60%", "70%", "80%")


def perplexity_table(df: pd.DataFrame) -> dict:
    """The table of the LLM-pruning papers (SparseGPT Table 3, Wanda Table 2): one row per method, one column
    per target (unstructured sparsities and N:M), the primary metric averaged over seeds; dense as the first row."""
    figs = {}
    pruning = df[df["family"] == "pruning"]
    for task, tdf in pruning.groupby("task"):
        col = f"metric.{tdf['primary_metric'].iloc[0]}"
        labels = [c for c in TABLE_COLUMNS if c in set(tdf["target_label"])]
        labels += sorted(set(tdf["target_label"]) - set(labels) - {"0%"})
        table = tdf[tdf["method"] != "dense"].pivot_table(index="method", columns="target_label", values=col,
                                                         aggfunc="mean").reindex(columns=labels)
        dense = tdf[tdf["method"] == "dense"][col].mean()
        rows = (["dense"] if pd.notna(dense) else []) + list(table.index)
        cells = ([[f"{dense:.2f}"] * len(labels)] if pd.notna(dense) else []) + [
            ["" if pd.isna(v) else f"{v:.2f}" for v in table.loc[m]] for m in table.index]
        # wide enough for a title line of the task's model and data
        fig, ax = plt.subplots(figsize=(max(4.8, 1.2 + 1.1 * max(len(labels), 1)), 0.9 + 0.32 * (len(rows) + 1)))
        ax.axis("off")
        if rows and labels:
            t = ax.table(cellText=cells, rowLabels=rows, colLabels=labels, loc="center", cellLoc="right")
            t.auto_set_font_size(False)
            t.set_fontsize(8)
        ax.set_title(f"{task_title(task)}\n{col.split('.', 1)[1]} (lower is better)", fontsize=9)
        fig.tight_layout()
        figs[f"perplexity_table_{task}"] = fig
    return figs


def _sparsity_panel(ax, tdf: pd.DataFrame, col: str) -> bool:
    """One metric versus sparsity: unstructured targets as lines, N:M as hollow markers, dense as a dashed line,
    each with its 95 % interval; True when an interval was drawn."""
    dense = tdf[tdf["method"] == "dense"]
    if not dense.empty:
        mean, lo, hi, _ = interval_of(dense, col)
        ax.axhline(mean, color="black", ls="--", lw=1, label="dense")
        if lo == lo and hi == hi:
            ax.axhspan(lo, hi, color="black", alpha=0.07, lw=0)
    shaded = False
    for method in method_order(tdf["method"]):
        if method == "dense":
            continue
        mdf = tdf[tdf["method"] == method]
        st = method_style(method)
        uns = mdf[mdf["pattern"] == "unstructured"]
        shaded |= plot_seed_curve(ax, uns, "target_sparsity", col, method, 100)
        nm = mdf[mdf["pattern"] != "unstructured"].groupby(["pattern", "target_sparsity"])
        for i, ((pattern, s), g) in enumerate(nm):
            v, lo, hi, _ = interval_of(g, col)
            label = method_label(method) if uns.empty and i == 0 else None  # N:M-only methods still get a legend entry
            ax.plot([s * 100], [v], ls="none", marker=st["marker"], mfc="none", mec=st["color"], ms=9, label=label)
            if lo == lo and hi == hi:
                ax.errorbar([s * 100], [v], yerr=[[v - lo], [hi - v]], fmt="none", ecolor=st["color"], capsize=3)
                shaded = True
            ax.annotate(pattern, (s * 100, v), textcoords="offset points", xytext=(6, 0), fontsize=7,
                        color=st["color"])
    ax.set_xlabel("sparsity (%)")
    ax.grid(alpha=0.3)
    return shaded


def zeroshot_vs_sparsity(df: pd.DataFrame) -> dict:
    """Mean zero-shot accuracy versus sparsity beside perplexity versus sparsity (LLM-KICK's point: the two
    can disagree), one figure per task whose pruning results carry zero-shot accuracy."""
    figs = {}
    pruning = df[df["family"] == "pruning"]
    if "metric.zeroshot.mean_acc" not in pruning.columns:
        return figs
    for task, tdf in pruning.groupby("task"):
        tdf = tdf[tdf["metric.zeroshot.mean_acc"].notna()]
        metric = tdf["primary_metric"].iloc[0] if len(tdf) else None
        if tdf.empty or f"metric.{metric}" not in tdf.columns:
            continue
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
        shaded = _sparsity_panel(left, tdf, f"metric.{metric}")
        left.set_ylabel(metric + (" (log scale)" if metric == "perplexity" else ""))
        if metric == "perplexity":
            left.set_yscale("log")
        left.set_title(f"{metric} vs sparsity", fontsize=10)
        shaded |= _sparsity_panel(right, tdf, "metric.zeroshot.mean_acc")
        right.set_ylabel("mean zero-shot accuracy")
        right.set_title("mean zero-shot accuracy vs sparsity (lm-eval)", fontsize=10)
        right.legend(fontsize=8)
        fig.suptitle(f"{task_title(task)}\nhollow markers = N:M" + (f"; {INTERVAL_LABEL}" if shaded else ""), fontsize=10)
        fig.tight_layout()
        figs[f"zeroshot_vs_sparsity_{task}"] = fig
    return figs


FIGURES = {"quality_vs_sparsity": quality_vs_sparsity, "perplexity_table": perplexity_table,
           "zeroshot_vs_sparsity": zeroshot_vs_sparsity}
