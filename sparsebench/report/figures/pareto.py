"""Quality versus latency: the Pareto front per task and hardware profile (the report's one such figure).

Reads the summary columns ``latency_ms.<profile>`` (the model's latency on a
hardware profile, written by the kernels family). One point per method and
target (mean over seeds); the front joins the points no other point beats in
both latency and quality. Draws nothing when no latency column has values.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sparsebench.latency import latency_label  # noqa: E402
from sparsebench.report.style import method_label, method_order, method_style  # noqa: E402
from sparsebench.report.summary import higher_is_better, task_title  # noqa: E402

FAMILY = "pareto"
TITLE = "Quality versus latency (Pareto front)"
LATENCY_PREFIX = "latency_ms."


def pareto_mask(latency: np.ndarray, quality: np.ndarray, higher_better: bool) -> np.ndarray:
    """True where no other point has latency <= and quality at least as good, one of them strictly."""
    q = quality if higher_better else -quality
    keep = np.ones(len(latency), dtype=bool)
    for i in range(len(latency)):
        no_worse = (latency <= latency[i]) & (q >= q[i])
        better = (latency < latency[i]) | (q > q[i])
        keep[i] = not np.any(no_worse & better)
    return keep


def latency_profiles(df: pd.DataFrame) -> list[str]:
    return [c[len(LATENCY_PREFIX):] for c in df.columns if c.startswith(LATENCY_PREFIX) and df[c].notna().any()]


def pareto_points(tdf: pd.DataFrame, profile: str, metric: str) -> pd.DataFrame:
    lat, col = f"{LATENCY_PREFIX}{profile}", f"metric.{metric}"
    rows = tdf.dropna(subset=[lat, col])
    return (rows.groupby(["method", "target_label"], as_index=False)
            .agg(latency=(lat, "mean"), quality=(col, "mean"), seeds=("seed", "nunique")))


def pareto_fronts(df: pd.DataFrame) -> dict:
    figs = {}
    if "primary_metric" not in df.columns:
        return figs
    for profile in latency_profiles(df):
        for task, tdf in df.groupby("task"):
            metric = tdf["primary_metric"].dropna().iloc[0] if tdf["primary_metric"].notna().any() else None
            if metric is None or f"metric.{metric}" not in tdf.columns:
                continue
            pts = pareto_points(tdf, profile, metric)
            if pts.empty:
                continue
            hib = higher_is_better(df, task, metric)
            pts["front"] = pareto_mask(pts["latency"].to_numpy(float), pts["quality"].to_numpy(float), hib)
            fig, ax = plt.subplots(figsize=(6.4, 4.4))
            for method in method_order(pts["method"]):
                st = method_style(method)
                mp = pts[pts["method"] == method]
                for front, face in ((True, st["color"]), (False, "none")):
                    sel = mp[mp["front"] == front]
                    if not sel.empty:
                        ax.plot(sel["latency"], sel["quality"], ls="none", marker=st["marker"], ms=8,
                                mfc=face, mec=st["color"], label=method_label(method) if front or mp["front"].sum() == 0 else None)
                for _, r in mp.iterrows():
                    ax.annotate(r["target_label"], (r["latency"], r["quality"]), textcoords="offset points",
                                xytext=(5, 3), fontsize=7, color=st["color"])
            front = pts[pts["front"]].sort_values("latency")
            ax.step(front["latency"], front["quality"], where="post", color="#444444", lw=1, ls=":", zorder=0,
                    label="Pareto front")
            source = tdf.get(f"latency_from.{profile}")
            committed = source is not None and str(source.dropna().iloc[0] if source.notna().any() else "").endswith(
                "_measurements.json")
            kinds = tdf.get(f"latency_kind.{profile}", pd.Series(dtype=object))
            ax.set_xlabel(f"latency on {profile} (ms/token; {latency_label(kinds)})"
                          + ("\nfrom the committed kernel measurements (hardware/baselines/)" if committed else ""))
            ax.set_ylabel(f"{metric} ({'higher' if hib else 'lower'} is better)")
            if metric == "perplexity":
                ax.set_yscale("log")
            ax.set_title(f"{task_title(task)}\non {profile}: {metric} vs latency (filled: on the front)", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            figs[f"pareto_{task}_{profile}"] = fig
    return figs


FIGURES = {"pareto": pareto_fronts}
