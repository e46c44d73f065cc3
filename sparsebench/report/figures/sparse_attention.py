"""Figures of the sparse-attention family, in the style of "The Sparse Frontier" (arXiv:2504.17768).

- ``attention_quality_vs_density``: per long-context perplexity task, one panel
  for sparse prefill and one for sparse decode; perplexity of the continuation
  versus density (log2 axis) per method, full attention as a dashed line.
- ``retrieval_vs_density``: the same for retrieval accuracy.
- ``attention_recall_vs_density``: recall of the dense attention mass.
- ``attention_quality_vs_speedup``: quality after a sparse prefill versus the
  prefill attention speed-up of the same pattern on FlexAttention over dense
  causal SDPA (``metric.attention_speedup``, measured on CUDA profiles with the
  ``flex`` executor), one point per method and density, labelled with the
  density; built only where such rows exist (CPU runs time nothing).
The density axis is the *measured* density of the phase (``metric.density_<phase>``, mean over
seeds; the target where none was recorded); each point is labelled with its target density. Error
bars: 95 % intervals (``sparsebench.report.curves``: t over seeds, else the bootstrap over the task's
units, tokens or passkey samples). A method plots only the phases it sparsifies (Quest and Mustafar:
decode; MInference's vertical-slash: prefill). Methods whose density counts kept K/V cache entries
rather than query-key pairs (Mustafar) are not on the pair-density axes: they get their own figure,
``kv_pruning_quality_vs_density``.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from sparsebench.report.curves import INTERVAL_LABEL, draw_interval, interval_of  # noqa: E402
from sparsebench.report.style import method_label, method_style  # noqa: E402
from sparsebench.report.summary import task_title  # noqa: E402

PHASES = ("prefill", "decode")
REFERENCE = "full-attention"


def density_kind(method: str) -> str:
    """"pairs" or "kv" (what a method's density counts); a method no longer registered counts pairs."""
    from sparsebench import registry

    try:
        return registry.method(method).cls.density_kind
    except Exception:
        return "pairs"


def _target_text(density: float) -> str:
    inv = 1 / density if density > 0 else math.inf
    return f"1/{inv:.0f}" if abs(inv - round(inv)) < 1e-6 and inv > 1 else f"{density:g}"


def _phase_panels(df: pd.DataFrame, metric: str, ylabel: str, title: str, log_y: bool, kind: str = "pairs",
                  prefix: str = "") -> dict:
    figs = {}
    att = df[df["family"] == "sparse_attention"]
    att = att[att["method"].map(lambda m: m == REFERENCE or density_kind(m) == kind).astype(bool)]
    if kind != "pairs" and not (att["method"] != REFERENCE).any():
        return figs
    xlabel = ("density (kept / causal query-key pairs)" if kind == "pairs"
              else "density (K/V cache entries read / all)")
    for task, tdf in att.groupby("task"):
        if f"metric.{metric}_decode" not in tdf or tdf[f"metric.{metric}_decode"].isna().all():
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
        drew_interval = False
        for ax, phase in zip(axes, PHASES):
            col = f"metric.{metric}_{phase}"
            ref = tdf[tdf["method"] == REFERENCE]
            if not ref.empty:
                mean, lo, hi, _ = interval_of(ref, col)
                ax.axhline(mean, color="black", ls="--", lw=1, label=REFERENCE)
                if math.isfinite(lo) and math.isfinite(hi):
                    ax.axhspan(lo, hi, color="black", alpha=0.07, lw=0)
            for method, mdf in tdf[tdf["method"] != REFERENCE].groupby("method"):
                if col not in mdf or mdf[col].isna().all():
                    continue  # a phase the method leaves dense: nothing measured
                st = method_style(method)
                pts = _points(mdf, col, f"metric.density_{phase}")
                if pts.empty:
                    continue
                ax.plot(pts["x"], pts["mean"], color=st["color"], marker=st["marker"], label=method_label(method))
                drew_interval |= draw_interval(ax, pts["x"], pts, st["color"], band=False)
                for target, r in pts.iterrows():
                    ax.annotate(_target_text(1 - target), (r["x"], r["mean"]), textcoords="offset points",
                                xytext=(3, 3), fontsize=6, color=st["color"])
            ax.set_xscale("log", base=2)
            ax.set_xlabel("measured " + xlabel)
            ax.set_title(f"sparse {phase}")
            ax.grid(alpha=0.3)
            if log_y:
                ax.set_yscale("log")
        axes[0].set_ylabel(ylabel)
        axes[1].legend(fontsize=7, title="point labels: target density", title_fontsize=7)
        fig.suptitle(f"{task_title(task)}\n{title}" + (f"\n{INTERVAL_LABEL}" if drew_interval else ""), fontsize=10)
        fig.tight_layout()
        figs[f"{prefix}{metric}_vs_density_{task}"] = fig
    return figs


def kv_pruning_quality_vs_density(df: pd.DataFrame) -> dict:
    return _phase_panels(df, "perplexity", "continuation perplexity (log)",
                         "perplexity vs K/V cache density (KV-cache pruning)", True, kind="kv", prefix="kv_")


def _points(mdf: pd.DataFrame, col: str, density_col: str) -> pd.DataFrame:
    """Per target sparsity: x = measured density (mean over rows; the target density where none was
    recorded), mean/lo/hi/n of ``col``."""
    out = {}
    for target, g in mdf.groupby("target_sparsity"):
        mean, lo, hi, n = interval_of(g, col)
        if n == 0:
            continue
        measured = g[density_col].dropna() if density_col in g else pd.Series(dtype=float)
        out[target] = (float(measured.mean()) if len(measured) else 1 - float(target), mean, lo, hi, n)
    return pd.DataFrame.from_dict(out, orient="index", columns=["x", "mean", "lo", "hi", "n"]).sort_values("x")


def attention_quality_vs_density(df: pd.DataFrame) -> dict:
    return _phase_panels(df, "perplexity", "continuation perplexity (log)", "perplexity vs attention density", True)


def retrieval_vs_density(df: pd.DataFrame) -> dict:
    return _phase_panels(df, "accuracy", "passkey accuracy", "retrieval accuracy vs attention density", False)


def attention_recall_vs_density(df: pd.DataFrame) -> dict:
    return _phase_panels(df, "recall", "recall of dense attention mass", "recall vs attention density", False)


def attention_quality_vs_speedup(df: pd.DataFrame) -> dict:
    figs = {}
    if "metric.attention_speedup" not in df:
        return figs
    att = df[(df["family"] == "sparse_attention") & df["metric.attention_speedup"].notna()]
    for (task, hw), tdf in att.groupby(["task", "hardware"]):
        metric = next((m for m in ("perplexity", "accuracy") if f"metric.{m}_prefill" in tdf
                       and tdf[f"metric.{m}_prefill"].notna().any()), None)
        if metric is None:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for method, mdf in tdf.groupby("method"):
            st = method_style(method)
            pts = mdf.assign(density=1 - mdf["target_sparsity"]).groupby("density")[
                ["metric.attention_speedup", f"metric.{metric}_prefill"]].mean().sort_index()
            ax.plot(pts.iloc[:, 0], pts.iloc[:, 1], color=st["color"], marker=st["marker"], label=method_label(method))
            for d, (x, y) in pts.iterrows():
                ax.annotate(f"{d:g}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.axvline(1.0, color="black", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("prefill attention speed-up, FlexAttention on the pattern vs causal SDPA")
        ax.set_ylabel(f"{metric} after sparse prefill" + (" (log)" if metric == "perplexity" else ""))
        if metric == "perplexity":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{task_title(task)} on {hw}: quality vs speed of the same pattern")
        fig.tight_layout()
        figs[f"quality_vs_speedup_{task}_{hw}"] = fig
    return figs


FIGURES = {
    "attention_quality_vs_speedup": attention_quality_vs_speedup,
    "attention_quality_vs_density": attention_quality_vs_density,
    "retrieval_vs_density": retrieval_vs_density,
    "attention_recall_vs_density": attention_recall_vs_density,
    "kv_pruning_quality_vs_density": kv_pruning_quality_vs_density,
}
