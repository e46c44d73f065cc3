"""Curves with 95 % intervals: the mean per x, error bars and a shaded band.

Every figure that plots a metric against sparsity (or density, or FLOPs) draws its intervals through
:func:`interval_stats`, so an interval means the same everywhere: with several seeds at a point, the
95 % Student-t interval of the mean over seeds; with one result, the 95 % interval over the task's
units (windows, tokens, samples: bootstrap, or exact binomial / t with fewer than 30 units) that the
summary carries as ``ci_lo.<metric>`` / ``ci_hi.<metric>`` (:mod:`sparsebench.stats`); neither: none.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sparsebench.report.style import method_label, method_style

INTERVAL_LABEL = "bars / band: 95 % interval (t over seeds, else over the task's units: windows, tokens, samples)"


def ci_columns(y: str) -> tuple[str, str]:
    """The summary's interval columns of a metric column ``metric.<name>``."""
    name = y.split(".", 1)[1] if y.startswith("metric.") else y
    return f"ci_lo.{name}", f"ci_hi.{name}"


def interval_of(rows: pd.DataFrame, y: str) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of column ``y`` over ``rows`` (seeds of one setting); NaN bounds where none."""
    from sparsebench.stats import t_interval

    if "status" in rows.columns:  # invalid results never lend their numbers to a figure or table
        rows = rows[rows["status"].astype(str) != "invalid"]
    vals = rows[y].dropna().astype(float)
    vals = vals[np.isfinite(vals)]
    if vals.empty:
        return math.nan, math.nan, math.nan, 0
    if len(vals) > 1:
        ci = t_interval(vals.to_numpy())
        return ci.estimate, ci.lo, ci.hi, len(vals)
    lo_col, hi_col = ci_columns(y)
    row = rows.loc[vals.index[0]]
    lo, hi = (float(row[c]) if c in rows.columns and pd.notna(row[c]) else math.nan for c in (lo_col, hi_col))
    return float(vals.iloc[0]), lo, hi, 1


def interval_stats(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per value of ``x``: mean, lo, hi (95 %), n of ``y``, sorted by ``x``."""
    out = {k: interval_of(g, y) for k, g in df.dropna(subset=[y]).groupby(x)}
    return pd.DataFrame.from_dict(out, orient="index", columns=["mean", "lo", "hi", "n"]).sort_index()


def draw_interval(ax, xs, stats: pd.DataFrame, color: str, band: bool = True) -> bool:
    """Error bars (and a band between points) where ``stats`` has bounds; True when something was drawn."""
    has = np.isfinite(stats["lo"].to_numpy(float)) & np.isfinite(stats["hi"].to_numpy(float))
    if not has.any():
        return False
    xs = np.asarray(xs, dtype=float)
    mean = stats["mean"].to_numpy(float)
    yerr = np.vstack([mean - stats["lo"].to_numpy(float), stats["hi"].to_numpy(float) - mean])
    if band and has.sum() > 1:
        ax.fill_between(xs, stats["lo"], stats["hi"], where=has, color=color, alpha=0.15, lw=0)
    # error bars too: a band between points is invisible where a method has a single x
    ax.errorbar(xs[has], mean[has], yerr=yerr[:, has], fmt="none", ecolor=color, elinewidth=1.1, capsize=3)
    return True


def plot_seed_curve(ax, df: pd.DataFrame, x: str, y: str, method: str, x_scale: float = 1.0,
                    label: str | None = None) -> bool:
    """Draw ``method``'s mean curve of ``y`` over ``x`` in its style, with 95 % intervals where known.

    Returns True when an interval was drawn (so the caller can say so in its legend).
    """
    stats = interval_stats(df, x, y)
    if stats.empty:
        return False
    st = method_style(method)
    xs = stats.index.to_numpy(dtype=float) * x_scale
    ax.plot(xs, stats["mean"], color=st["color"], marker=st["marker"], label=label or method_label(method))
    return draw_interval(ax, xs, stats, st["color"])
