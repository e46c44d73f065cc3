"""Uncertainty of metrics: 95 % intervals from per-unit samples and across seeds, and of differences.

A result may carry per-unit values of a metric (``result["samples"][metric]``, see CONTRACT: ``unit``,
``statistic``, ``values``, optional ``ids``): the metric is ``mean(values)`` (statistic ``mean``) or
``exp(mean(values))`` (``exp_mean``: perplexity from per-window or per-token mean NLL). From these:

- :func:`bootstrap_ci`: percentile bootstrap interval of the metric, resampling units with a fixed
  seed (units of kind ``token`` are resampled in contiguous blocks of :data:`TOKEN_BLOCK`, because the
  NLLs of neighbouring tokens are correlated; resampling single tokens would make the interval too narrow);
- :func:`bootstrap_contrast`: the interval of ``lhs - rhs`` and of ``lhs / rhs - 1`` where each side is
  the mean over its rows (seeds) of the metric; *paired* when both sides were evaluated on the same units
  (one set of resampled indices for both, so what the units share cancels out), unpaired otherwise;
- :func:`t_interval`, :func:`paired_t_interval`, :func:`welch_interval`: Student-t intervals across
  seeds (replicates) of a mean, of a mean paired difference and of an unpaired difference;
- :func:`wilson_interval`, :func:`normal_mean_interval`: closed forms (the tests check the bootstrap
  against them).

Nothing non-finite ever enters an interval: :class:`NonFinite` is raised instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 4000
SEED = 12345  # fixed: the same inputs always give the same interval
TOKEN_BLOCK = 16  # tokens per resampled block for units of kind "token"
STATISTICS = ("mean", "exp_mean")
UNITS = ("window", "sequence", "sample", "item", "token")
_CHUNK = 500  # resamples per vectorised step (bounds memory for long token sequences)
# Below this many units the percentile bootstrap is too narrow (3 of 4 passkeys would exclude 0.25):
# closed forms instead (sparsebench.stats_small: exact binomial for 0/1 values, Student-t otherwise).
SMALL_N = 30


class NonFinite(ValueError):
    """A NaN or infinite input: the caller reports the result as invalid instead of an interval."""


@dataclass(frozen=True)
class Interval:
    estimate: float
    lo: float
    hi: float
    method: str  # how it was computed, e.g. "paired bootstrap over 32 windows"
    n: int = 0  # units (bootstrap) or replicates (t)

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "method": self.method, "n": self.n}


@dataclass(frozen=True)
class Contrast:
    """lhs and rhs (side means), their difference and relative difference, each difference with an interval."""

    lhs: float
    rhs: float
    diff: Interval  # lhs - rhs
    rel: Interval  # lhs / |rhs| - sign: (lhs - rhs) / |rhs|
    method: str


def finite(values, what: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError(f"{what}: no values")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise NonFinite(f"{what}: {int(bad.sum())} non-finite value(s) (first: {arr[bad][0]})")
    return arr


def apply_statistic(statistic: str, means):
    if statistic == "mean":
        return means
    if statistic == "exp_mean":
        return np.exp(means)
    raise ValueError(f"statistic={statistic!r}; allowed: {', '.join(STATISTICS)}")


def point(values, statistic: str = "mean") -> float:
    return float(apply_statistic(statistic, float(np.mean(finite(values)))))


def block_for(unit: str | None, n: int) -> int:
    return TOKEN_BLOCK if unit == "token" and n > 2 * TOKEN_BLOCK else 1


def resample_indices(n: int, resamples: int, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    """(resamples, n) indices into n units: i.i.d. draws, or circular blocks of ``block`` consecutive units."""
    if block <= 1:
        return rng.integers(0, n, size=(resamples, n))
    starts = rng.integers(0, n, size=(resamples, -(-n // block)))
    idx = (starts[:, :, None] + np.arange(block)) % n
    return idx.reshape(resamples, -1)[:, :n]


def _quantiles(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    a = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [a, 1 - a])
    return float(lo), float(hi)


def bootstrap_ci(values, statistic: str = "mean", unit: str | None = None, resamples: int = RESAMPLES,
                 seed: int = SEED, confidence: float = CONFIDENCE) -> Interval:
    """Percentile bootstrap interval of ``statistic(values)`` over the units."""
    v = finite(values)
    block = block_for(unit, len(v))
    if len(v) < SMALL_N and block == 1:
        return small_ci(v, statistic, unit, confidence)
    rng = np.random.default_rng(seed)
    draws = np.concatenate([apply_statistic(statistic, v[resample_indices(len(v), min(_CHUNK, resamples - s), rng,
                                                                           block)].mean(axis=1))
                            for s in range(0, resamples, _CHUNK)])
    lo, hi = _quantiles(draws, confidence)
    how = f"bootstrap over {len(v)} {unit or 'unit'}s" + (f" (blocks of {block})" if block > 1 else "")
    return Interval(point(v, statistic), lo, hi, how, len(v))


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its rows' per-unit values (rows x units, same units in every row) and how
    a row's metric follows from them; or a constant."""

    values: np.ndarray | None = None  # (rows, units)
    statistic: str = "mean"
    unit: str | None = None
    constant: float | None = None

    def draws(self, idx: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(idx), self.constant)
        per_row = apply_statistic(self.statistic, self.values[:, idx].mean(axis=-1))  # (rows, resamples)
        return per_row.mean(axis=0)

    def estimate(self) -> float:
        if self.constant is not None:
            return self.constant
        return float(np.mean(apply_statistic(self.statistic, self.values.mean(axis=1))))

    @property
    def n(self) -> int:
        return 0 if self.values is None else self.values.shape[1]


def side_of(rows_values: list, statistic: str, unit: str | None = None, what: str = "side") -> Side:
    mat = finite(np.vstack([np.asarray(r, dtype=float) for r in rows_values]), what)
    return Side(mat, statistic, unit)


def bootstrap_contrast(lhs: Side, rhs: Side, paired: bool, resamples: int = RESAMPLES, seed: int = SEED,
                       confidence: float = CONFIDENCE) -> Contrast:
    """Bootstrap interval of lhs - rhs and (lhs - rhs) / |rhs|; ``paired``: one index draw for both sides
    (they must have the same units in the same order), else each side is resampled on its own."""
    if paired and lhs.constant is None and rhs.constant is None and lhs.n != rhs.n:
        raise ValueError(f"paired bootstrap needs the same units on both sides ({lhs.n} vs {rhs.n})")
    sides = [s for s in (lhs, rhs) if s.constant is None]
    if max(s.n for s in sides) < SMALL_N and len({s.statistic for s in sides}) == 1:
        return small_contrast(lhs, rhs, paired, confidence)
    rng = np.random.default_rng(seed)
    block = max(block_for(s.unit, s.n) for s in sides)
    d, r = [], []
    for start in range(0, resamples, _CHUNK):
        k = min(_CHUNK, resamples - start)
        if paired or len(sides) == 1:
            n = sides[0].n
            idx_l = idx_r = resample_indices(n, k, rng, block)
        else:
            idx_l = resample_indices(lhs.n, k, rng, block_for(lhs.unit, lhs.n))
            idx_r = resample_indices(rhs.n, k, rng, block_for(rhs.unit, rhs.n))
        dl, dr = lhs.draws(idx_l), rhs.draws(idx_r)
        d.append(dl - dr)
        with np.errstate(divide="ignore", invalid="ignore"):
            r.append((dl - dr) / np.abs(dr))
    d, r = np.concatenate(d), np.concatenate(r)
    l_est, r_est = lhs.estimate(), rhs.estimate()
    units = max(s.n for s in sides)
    unit = next((s.unit for s in sides if s.unit), "unit")
    how = ("paired " if paired and len(sides) == 2 else "") + f"bootstrap over {units} {unit}s" + (
        f" (blocks of {block})" if block > 1 else "") + ("" if paired or len(sides) == 1 else ", sides resampled apart")
    rel_est = (l_est - r_est) / abs(r_est) if r_est != 0 else math.nan
    rel_lo, rel_hi = _quantiles(r, confidence) if np.isfinite(r).all() else (math.nan, math.nan)
    return Contrast(l_est, r_est, Interval(l_est - r_est, *_quantiles(d, confidence), how, units),
                    Interval(rel_est, rel_lo, rel_hi, how, units), how)


def small_ci(v, statistic, unit, confidence):
    from sparsebench.stats_small import small_ci as _small

    return _small(v, statistic, unit, confidence)


def small_contrast(lhs, rhs, paired, confidence):
    from sparsebench.stats_small import small_contrast as _small

    return _small(lhs, rhs, paired, confidence)


# ---------------------------------------------------------------- Student-t intervals (replicates = seeds)

# The quantiles come from scipy.special, the functions scipy.stats' ``t.ppf`` and ``norm.ppf`` evaluate
# (the same numbers, bit for bit): importing scipy.stats costs every job that prints its interval ~1 s.
def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.5 + confidence / 2))


def t_interval(values, confidence: float = CONFIDENCE, method: str = "t-interval") -> Interval:
    """mean +- t_{(1+c)/2, n-1} s / sqrt(n); with one value the interval is undefined (NaN bounds)."""
    v = finite(values)
    m = float(v.mean())
    if len(v) < 2:
        return Interval(m, math.nan, math.nan, f"{method} needs 2+ values (has 1)", 1)
    h = t_quantile(len(v) - 1, confidence) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return Interval(m, m - h, m + h, f"{method} over {len(v)}", len(v))


def paired_t_interval(a, b, confidence: float = CONFIDENCE) -> Interval:
    a, b = finite(a), finite(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths ({len(a)} vs {len(b)})")
    return t_interval(a - b, confidence, "paired t over seeds")


def welch_interval(a, b, confidence: float = CONFIDENCE) -> Interval:
    """Welch's interval of mean(a) - mean(b) (unequal variances, Welch-Satterthwaite degrees of freedom)."""
    a, b = finite(a), finite(b)
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Interval(d, math.nan, math.nan, "Welch t needs 2+ values per side", min(len(a), len(b)))
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(d, d, d, f"Welch t over {len(a)} and {len(b)} (no spread)", min(len(a), len(b)))
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = t_quantile(df, confidence) * se
    return Interval(d, d - h, d + h, f"Welch t over {len(a)} and {len(b)} (unpaired)", min(len(a), len(b)))


# ---------------------------------------------------------------- closed forms

def z_quantile(confidence: float = CONFIDENCE) -> float:
    from scipy.special import ndtri

    return float(ndtri(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    z = z_quantile(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def normal_mean_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """mean +- z s / sqrt(n): the large-sample interval of a mean."""
    v = finite(values)
    h = z_quantile(confidence) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return float(v.mean()) - h, float(v.mean()) + h


# ---------------------------------------------------------------- a result's samples

def check_samples(entry: dict, what: str) -> None:
    """The contract of one ``samples`` entry (raises ValueError naming the key)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
        raise ValueError(f"{what}: a samples entry is a mapping with a list 'values'")
    if entry.get("statistic", "mean") not in STATISTICS:
        raise ValueError(f"{what}.statistic={entry.get('statistic')!r}; allowed: {', '.join(STATISTICS)}")
    ids = entry.get("ids")
    if ids is not None and len(ids) != len(entry["values"]):
        raise ValueError(f"{what}.ids: {len(ids)} ids for {len(entry['values'])} values")


def sample_interval(entry: dict, what: str = "samples") -> Interval:
    check_samples(entry, what)
    return bootstrap_ci(entry["values"], entry.get("statistic", "mean"), entry.get("unit"))


def interval_columns(result: dict) -> dict:
    """Summary columns ``ci_lo.<metric>`` / ``ci_hi.<metric>`` (95 % bootstrap over the metric's units) for
    every metric with samples; nothing for a metric whose samples are missing, malformed or not finite."""
    out = {}
    if result.get("status", "ok") != "ok":
        return out
    for metric, entry in sorted((result.get("samples") or {}).items()):
        try:
            ci = sample_interval(entry, f"samples.{metric}")
        except ValueError:
            continue
        out[f"ci_lo.{metric}"], out[f"ci_hi.{metric}"] = ci.lo, ci.hi
    return out


def compact(values, digits: int = 6) -> list[float]:
    """Plain floats rounded to ``digits`` significant digits (keeps result.json small)."""
    return [float(f"{float(v):.{digits}g}") for v in np.asarray(values, dtype=float).ravel()]


def samples_entry(values, unit: str, statistic: str = "mean", ids=None) -> dict:
    """One ``samples`` entry as the contract writes it."""
    if unit not in UNITS:
        raise ValueError(f"unit={unit!r}; allowed: {', '.join(UNITS)}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r}; allowed: {', '.join(STATISTICS)}")
    entry = {"unit": unit, "statistic": statistic, "values": compact(values)}
    if ids is not None:
        entry["ids"] = [str(i) for i in ids]
    return entry
