"""Intervals over few units (fewer than ``sparsebench.stats.SMALL_N``), where the percentile bootstrap
is too narrow: with 4 passkey samples, 3 correct, it cannot go below 0.25 although the exact 95 %
interval is 0.19-0.99.

- per-sample or per-item values that are all 0 or c (0/1 correctness, 0/100 top-1; fractions per
  window are never read as counts, even when they round to 1): exact binomial (Clopper-Pearson)
  intervals; a paired difference of two such metrics is judged on its discordant units (units right
  on one side and wrong on the other): an exact interval of how often they favour lhs, combined with
  an exact interval of how many units are discordant (conservative: two 95 % intervals at once);
- other values with statistic ``mean``: Student-t on the (paired) per-unit values or differences;
- statistic ``exp_mean`` (perplexity): Student-t on the mean NLL (difference), exponentiated, which
  gives the ratio lhs/rhs exactly and the difference as rhs * (ratio - 1).
Rows of one side (seeds) are averaged per unit first.
"""

from __future__ import annotations

import math

import numpy as np

from sparsebench.stats import CONFIDENCE, Contrast, Interval, Side, t_interval, welch_interval


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    from scipy.stats import beta

    a = 1 - confidence
    lo = float(beta.ppf(a / 2, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1 - a / 2, k + 1, n - k)) if k < n else 1.0
    return lo, hi


BINARY_UNITS = ("sample", "item")  # units whose values may be correctness (0 or c)


def binary_scale(*arrays, unit: str | None = "sample") -> float | None:
    """c when the units are samples/items and every value is 0 or c (c > 0; all-zero counts as 0/1), else None."""
    if unit not in BINARY_UNITS:
        return None
    u = np.unique(np.concatenate([np.ravel(a) for a in arrays]))
    if len(u) > 2 or u.min() < 0 or (len(u) == 2 and u[0] != 0):
        return None
    return float(u.max()) if u.max() > 0 else 1.0


def small_ci(v: np.ndarray, statistic: str, unit: str | None, confidence: float = CONFIDENCE) -> Interval:
    n, what = len(v), f"{len(v)} {unit or 'unit'}s"
    if statistic == "exp_mean":
        t = t_interval(v, confidence)
        return Interval(math.exp(t.estimate), math.exp(t.lo), math.exp(t.hi), f"t over {what} (log scale)", n)
    c = binary_scale(v, unit=unit)
    if c is not None:
        lo, hi = clopper_pearson(int(round(v.sum() / c)), n, confidence)
        return Interval(float(v.mean()), lo * c, hi * c, f"exact binomial over {what}", n)
    t = t_interval(v, confidence)
    return Interval(t.estimate, t.lo, t.hi, f"t over {what}", n)


def _paired_binary(a: np.ndarray, b: np.ndarray, c: float, confidence: float) -> tuple[float, float]:
    n = len(a)
    n10, n01 = int(((a > 0) & (b == 0)).sum()), int(((a == 0) & (b > 0)).sum())
    m = n10 + n01
    r_lo, r_hi = clopper_pearson(m, n, confidence)  # share of discordant units
    if m == 0:
        return -r_hi * c, r_hi * c
    th_lo, th_hi = clopper_pearson(n10, m, confidence)  # share of those favouring lhs
    lo = (r_hi if th_lo < 0.5 else r_lo) * (2 * th_lo - 1)
    hi = (r_hi if th_hi > 0.5 else r_lo) * (2 * th_hi - 1)
    return lo * c, hi * c


def small_contrast(lhs: Side, rhs: Side, paired: bool, confidence: float = CONFIDENCE) -> Contrast:
    const = lhs.constant if lhs.constant is not None else rhs.constant
    vl = None if lhs.constant is not None else lhs.values.mean(axis=0)
    vr = None if rhs.constant is not None else rhs.values.mean(axis=0)
    l_est, r_est = lhs.estimate(), rhs.estimate()
    statistic = (lhs if vl is not None else rhs).statistic
    n = max(len(x) for x in (vl, vr) if x is not None)
    unit = next((s.unit for s in (lhs, rhs) if s.unit), None)
    both = vl is not None and vr is not None
    design = "paired " if both and paired else ""
    if statistic == "exp_mean":  # log(lhs / rhs) = mean NLL difference
        if both:
            d = t_interval(vl - vr, confidence) if paired else welch_interval(vl, vr, confidence)
        else:
            sign = 1.0 if vl is not None else -1.0
            d = t_interval(sign * ((vl if vl is not None else vr) - math.log(const)), confidence)
        ratio = [math.exp(x) - 1 for x in (d.lo, d.hi)]
        how = f"{design}t over {n} {unit or 'unit'}s (log scale)"
        rel = Interval((l_est - r_est) / abs(r_est), *ratio, how, n)
        return Contrast(l_est, r_est, Interval(l_est - r_est, ratio[0] * r_est, ratio[1] * r_est, how, n), rel, how)
    c = binary_scale(*(x for x in (vl, vr) if x is not None), unit=unit)
    if c is not None:
        if both and paired:
            lo, hi = _paired_binary(vl, vr, c, confidence)
        elif both:
            (al, ah), (bl, bh) = (clopper_pearson(int(round(x.sum() / c)), len(x), confidence) for x in (vl, vr))
            lo, hi = (al - bh) * c, (ah - bl) * c
        else:
            x = vl if vl is not None else vr
            pl, ph = clopper_pearson(int(round(x.sum() / c)), len(x), confidence)
            lo, hi = (pl * c - const, ph * c - const) if vl is not None else (const - ph * c, const - pl * c)
        how = f"{design}exact binomial over {n} {unit or 'unit'}s"
    else:
        if both:
            d = t_interval(vl - vr, confidence) if paired else welch_interval(vl, vr, confidence)
        else:
            sign = 1.0 if vl is not None else -1.0
            d = t_interval(sign * ((vl if vl is not None else vr) - const), confidence)
        lo, hi = d.lo, d.hi
        how = f"{design}t over {n} {unit or 'unit'}s"
    diff = Interval(l_est - r_est, lo, hi, how, n)
    scale = abs(r_est)
    rel = Interval((l_est - r_est) / scale, lo / scale, hi / scale, how + ", relative to rhs", n) if scale else \
        Interval(math.nan, math.nan, math.nan, how, n)
    return Contrast(l_est, r_est, diff, rel, how)
