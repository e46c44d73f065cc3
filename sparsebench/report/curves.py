"""Curves over seeds: the mean per x with a shaded interval where several seeds ran.

Every figure that plots a metric against sparsity (or density, or FLOPs) uses
these two functions, so seed intervals mean the same thing everywhere:
mean +- one standard deviation over seeds (sample s.d., ``ddof=1``), drawn as a
shaded band and as error bars.
"""

from __future__ import annotations

import pandas as pd

from sparsebench.report.style import method_style

INTERVAL_LABEL = "shaded / bars: mean ± 1 s.d. over seeds"


def seed_stats(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per value of ``x``: mean, s.d., count of ``y`` (rows are seeds), sorted by ``x``."""
    g = df.dropna(subset=[y]).groupby(x)[y]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).sort_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def plot_seed_curve(ax, df: pd.DataFrame, x: str, y: str, method: str, x_scale: float = 1.0,
                    label: str | None = None) -> bool:
    """Draw ``method``'s mean curve of ``y`` over ``x`` in its style; +-1 s.d. (band, bars) where n > 1.

    Returns True when the shaded interval was drawn (so the caller can say so in its legend).
    """
    stats = seed_stats(df, x, y)
    if stats.empty:
        return False
    st = method_style(method)
    xs = stats.index.to_numpy(dtype=float) * x_scale
    ax.plot(xs, stats["mean"], color=st["color"], marker=st["marker"], label=label or method)
    several = (stats["n"] > 1).to_numpy()
    if several.any():
        lo, hi = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
        ax.fill_between(xs, lo, hi, where=several, color=st["color"], alpha=0.18, lw=0)
        # error bars too: a band between points is invisible where a method has a single x
        ax.errorbar(xs[several], stats["mean"][several], yerr=stats["std"][several], fmt="none",
                    ecolor=st["color"], elinewidth=1.2, capsize=4)
        return True
    return False
