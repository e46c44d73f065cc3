"""Judging a claim on stored results: the two numbers, their difference, its 95 % interval, a verdict.

In each group of ``per`` the claim's quantity is ``lhs - rhs`` (``tolerance`` 0) or the relative
difference ``(lhs - rhs) / |rhs|`` (``tolerance`` > 0, compared with +-tolerance). Its interval comes
from the best design the rows allow (:func:`_interval`):

1. both sides have 2+ rows with the same seeds: seeds are the replicate; the per-seed differences are
   paired and get a Student-t interval;
2. a side has 2+ rows otherwise (seeds not matched, or a constant on the other side): t-interval over
   rows (Welch's for two sides), unpaired;
3. every row has per-unit samples of its metric (``result.json`` ``samples``): bootstrap over the units,
   *paired* when both sides were evaluated on the same units (same ids), so what the units share cancels;
4. else there is nothing to measure the noise with: no interval.

Verdict of a group: *reproduced* when the whole interval is on the claim's side of the threshold,
*contradicted* when it is wholly on the other side, *inconclusive* when it straddles the threshold (or
there is no interval), *invalid* when a selected row is marked invalid or a value it needs is NaN or
infinite (never used in an interval), *not run* when a side has no rows. The claim: *invalid* if any
group is, else *contradicted* if any group is, else *inconclusive* if any is, else *reproduced* (when at
least one group ran), else *not run*.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparsebench import stats
from sparsebench.claims import Claim, _fmt, _side_text, matches

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
INVALID, NOT_RUN = "invalid", "not run"
STATUSES = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, INVALID, NOT_RUN)


@dataclass
class Comparison:
    """One group of ``per`` (e.g. one task): the two side means, the interval of the claim's quantity, the verdict."""

    group: dict
    lhs: float | None
    rhs: float | None
    lhs_rows: int
    rhs_rows: int
    verdict: str
    diff: stats.Interval | None = None  # lhs - rhs
    quantity: stats.Interval | None = None  # what the verdict reads: diff, or the relative difference
    relative: bool = False
    note: str = ""  # why invalid / not run / no interval, or a caveat of the design

    @property
    def holds(self) -> bool | None:
        return {REPRODUCED: True, CONTRADICTED: False}.get(self.verdict)

    def describe(self, claim: Claim) -> str:
        where = ", ".join(f"{v}" for v in self.group.values())
        prefix = f"{where}: " if where else ""
        if self.lhs is None or self.rhs is None:
            return f"{prefix}{self.verdict} ({self.note})"
        lm = f" {claim.lhs_metric}" if claim.lhs_metric else ""
        rm = f" {claim.rhs_metric}" if claim.rhs_metric else ""
        text = (f"{prefix}{_fmt(self.lhs)} [{_side_text(claim.lhs)}{lm}] {claim.op} "
                f"{_fmt(self.rhs)} [{_side_text(claim.rhs)}{rm}]")
        if self.diff is not None:
            text += f"; difference {_signed(self.diff.estimate)}"
            if not self.relative and _has_bounds(self.diff):
                text += f", 95 % CI [{_signed(self.diff.lo)}, {_signed(self.diff.hi)}]"
        if self.relative and self.quantity is not None:
            q = self.quantity
            ci = f" [{q.lo:+.2%}, {q.hi:+.2%}]" if _has_bounds(q) else ""
            text += f"; relative {q.estimate:+.2%}{ci}, needs {_threshold(claim)}"
        if self.quantity is not None:
            text += f" ({self.quantity.method})"
        return text + f": {self.verdict}" + (f" ({self.note})" if self.note else "")

    def to_dict(self, claim: Claim) -> dict:
        return {"group": self.group, "lhs": self.lhs, "rhs": self.rhs, "lhs_rows": self.lhs_rows,
                "rhs_rows": self.rhs_rows, "verdict": self.verdict, "holds": self.holds,
                "difference": self.diff.to_dict() if self.diff else None,
                "quantity": ("relative difference" if self.relative else "difference"),
                "interval": self.quantity.to_dict() if self.quantity else None, "note": self.note,
                "text": self.describe(claim)}


def _threshold(claim: Claim) -> str:
    t = claim.tolerance
    if claim.op == "~=":
        return f"within ±{t:.2%}"
    return f"{claim.op} {(t if claim.op in ('<', '<=') else -t):+.2%}"


def _signed(v: float) -> str:
    return f"{v:+.4g}" if abs(v) < 1e4 else f"{v:+.3e}"


def _has_bounds(iv: stats.Interval) -> bool:
    return math.isfinite(iv.lo) and math.isfinite(iv.hi)


@dataclass
class Verdict:
    claim: Claim
    status: str
    comparisons: list
    reason: str = ""

    def to_dict(self) -> dict:
        c = self.claim
        return {"id": c.id, "paper": c.paper, "statement": c.statement, "status": self.status,
                "reason": self.reason, "source": c.source, "metric": c.column, "lhs_metric": c.lhs_column,
                "rhs_metric": c.rhs_column, "op": c.op, "tolerance": c.tolerance,
                "comparisons": [cmp.to_dict(c) for cmp in self.comparisons]}


# ---------------------------------------------------------------- per-unit samples of a row

class Samples:
    """A row's ``samples`` entry of a metric, read from its result file (``result_path``) once.

    ``provider(row, metric) -> entry | None`` replaces the files (tests, other tables)."""

    def __init__(self, provider=None, results_dir: Path | None = None):
        self.provider = provider
        self.results_dir = results_dir
        self._docs: dict[str, dict] = {}

    def _path(self, path: str) -> Path:
        """``result_path`` as the summary wrote it, or (moved results, another working directory) the same
        ``runs/...`` file under ``results_dir``."""
        p = Path(path)
        if not p.exists() and self.results_dir is not None and "runs/" in path:
            p = Path(self.results_dir) / path[path.rindex("runs/"):]
        return p

    def _doc(self, row) -> dict:
        path = row.get("result_path")
        if not isinstance(path, str) or not path:
            return {}
        if path not in self._docs:
            try:
                self._docs[path] = json.loads(self._path(path).read_text())
            except (OSError, ValueError):
                self._docs[path] = {}
        return self._docs[path]

    def entry(self, row, metric: str) -> dict | None:
        if self.provider is not None:
            return self.provider(row, metric)
        return (self._doc(row).get("samples") or {}).get(metric)

    def stored_metric(self, row, metric: str):
        """The metric as the result file has it (NaN in the CSV may be a NaN the file recorded)."""
        return (self._doc(row).get("metrics") or {}).get(metric)


def _metric_name(column: str) -> str | None:
    return column[len("metric."):] if column.startswith("metric.") else None


@dataclass
class _Side:
    constant: float | None = None
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))  # one per row
    seeds: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    entries: list = field(default_factory=list)  # samples per row (None where absent)

    @property
    def rows(self) -> int:
        return 1 if self.constant is not None else len(self.values)

    @property
    def mean(self) -> float | None:
        if self.constant is not None:
            return self.constant
        return float(self.values.mean()) if len(self.values) else None


class Invalid(Exception):
    pass


def _side(rows, selector: dict, column: str, store: Samples, name: str) -> _Side:
    if "value" in selector:
        return _Side(constant=float(selector["value"]))
    sel = rows[matches(rows, selector)]
    metric = _metric_name(column)
    if "status" in sel.columns:
        bad = sel[sel["status"].astype(str) == "invalid"]
        if len(bad):
            why = bad["invalid_reason"].iloc[0] if "invalid_reason" in bad.columns else "marked invalid"
            raise Invalid(f"{name} row {bad.iloc[0].get('run_id', '?')} is invalid: {why}")
    keep = []
    for _, row in sel.iterrows():
        v = row.get(column)
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue  # text in a metric column: not a measurement of it
        if math.isnan(v):
            stored = store.stored_metric(row, metric) if metric else None
            if stored is None:
                continue  # not measured for this row
            v = float(stored)
        if not math.isfinite(v):
            raise Invalid(f"{name} row {row.get('run_id', '?')}: {column}={v}")
        keep.append((row, v))
    side = _Side(values=np.array([v for _, v in keep], dtype=float), seeds=[r.get("seed") for r, _ in keep],
                 tasks=[r.get("task") for r, _ in keep])
    side.entries = [store.entry(r, metric) if metric else None for r, _ in keep]
    for (row, _), entry in zip(keep, side.entries):
        if entry is not None:
            try:
                stats.check_samples(entry, f"{name} samples.{metric}")
                stats.finite(entry["values"], f"{name} row {row.get('run_id', '?')} samples.{metric}")
            except stats.NonFinite as err:
                raise Invalid(str(err)) from None
    return side


# ---------------------------------------------------------------- intervals and verdicts

def _seed_matched(lhs: _Side, rhs: _Side) -> bool:
    if lhs.constant is not None or rhs.constant is not None or min(lhs.rows, rhs.rows) < 2:
        return False
    return len(set(lhs.seeds)) == lhs.rows and len(set(rhs.seeds)) == rhs.rows and set(lhs.seeds) == set(rhs.seeds)


def _units_side(side: _Side) -> stats.Side | None:
    if side.constant is not None:
        return stats.Side(constant=side.constant)
    if any(e is None for e in side.entries) or len({len(e["values"]) for e in side.entries}) != 1:
        return None
    return stats.side_of([e["values"] for e in side.entries], side.entries[0].get("statistic", "mean"),
                         side.entries[0].get("unit"))


def _same_units(lhs: _Side, rhs: _Side) -> bool:
    entries = lhs.entries + rhs.entries
    ids = [tuple(e.get("ids") or ()) for e in entries]
    if all(ids):
        return len(set(ids)) == 1
    return len({len(e["values"]) for e in entries}) == 1 and len(set(lhs.tasks + rhs.tasks)) == 1


def _interval(lhs: _Side, rhs: _Side) -> tuple[stats.Interval | None, stats.Interval | None, str]:
    """(difference interval, relative-difference interval, note)."""
    if _seed_matched(lhs, rhs):
        order_l, order_r = np.argsort(lhs.seeds), np.argsort(rhs.seeds)
        a, b = lhs.values[order_l], rhs.values[order_r]
        rel = stats.t_interval((a - b) / np.abs(b), method="paired t over seeds")
        return stats.paired_t_interval(a, b), rel, ""
    varying = [s for s in (lhs, rhs) if s.constant is None]
    if all(s.rows >= 2 for s in varying):
        if len(varying) == 1:
            c = lhs.constant if lhs.constant is not None else rhs.constant
            sign = 1.0 if lhs.constant is None else -1.0
            d = stats.t_interval(sign * (varying[0].values - c), method="t over rows")
            return d, _scaled(d, abs(c), exact=True), "unpaired: rows against a constant"
        d = stats.welch_interval(lhs.values, rhs.values)
        note = "seeds not matched: unpaired" if set(lhs.seeds) != set(rhs.seeds) else "unpaired"
        return d, _scaled(d, abs(rhs.mean), exact=False), note
    ul, ur = _units_side(lhs), _units_side(rhs)
    if ul is not None and ur is not None:
        paired = lhs.constant is None and rhs.constant is None and _same_units(lhs, rhs)
        if not paired and lhs.constant is None and rhs.constant is None and ul.n != ur.n:
            pass  # different unit counts: still an unpaired bootstrap, each side on its own units
        con = stats.bootstrap_contrast(ul, ur, paired)
        note = "" if paired or len(varying) == 1 else "different units on the two sides: unpaired"
        return con.diff, con.rel, note
    return None, None, "no interval: one row per side and no per-unit samples"


def _scaled(d: stats.Interval, scale: float, exact: bool) -> stats.Interval:
    if scale == 0:
        return stats.Interval(math.nan, math.nan, math.nan, d.method, d.n)
    how = d.method + ("" if exact else ", relative to the mean of rhs")
    return stats.Interval(d.estimate / scale, d.lo / scale, d.hi / scale, how, d.n)


def verdict_of(op: str, threshold_lo: float, threshold_hi: float, lo: float, hi: float) -> str:
    """Where the interval [lo, hi] lies against the claim's threshold (lo/hi thresholds differ only for ~=)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if op == "<":
        return REPRODUCED if hi < threshold_hi else CONTRADICTED if lo >= threshold_hi else INCONCLUSIVE
    if op == "<=":
        return REPRODUCED if hi <= threshold_hi else CONTRADICTED if lo > threshold_hi else INCONCLUSIVE
    if op == ">":
        return REPRODUCED if lo > threshold_lo else CONTRADICTED if hi <= threshold_lo else INCONCLUSIVE
    if op == ">=":
        return REPRODUCED if lo >= threshold_lo else CONTRADICTED if hi < threshold_lo else INCONCLUSIVE
    if op == "~=":
        if threshold_lo <= lo and hi <= threshold_hi:
            return REPRODUCED
        return CONTRADICTED if hi < threshold_lo or lo > threshold_hi else INCONCLUSIVE
    raise ValueError(f"op={op!r}")


def compare(claim: Claim, rows, store: Samples, group: dict | None = None) -> Comparison:
    group = group or {}
    try:
        lhs = _side(rows, claim.lhs, claim.lhs_column, store, "lhs")
        rhs = _side(rows, claim.rhs, claim.rhs_column, store, "rhs")
    except Invalid as err:
        return Comparison(group, None, None, 0, 0, INVALID, note=str(err))
    if lhs.mean is None or rhs.mean is None:
        missing = [_side_text(getattr(claim, s)) for s, side in (("lhs", lhs), ("rhs", rhs)) if side.mean is None]
        return Comparison(group, lhs.mean, rhs.mean, lhs.rows if lhs.mean is not None else 0,
                          rhs.rows if rhs.mean is not None else 0, NOT_RUN,
                          note=f"no rows for {' and '.join(missing)}")
    try:
        diff, rel, note = _interval(lhs, rhs)
    except stats.NonFinite as err:
        return Comparison(group, None, None, lhs.rows, rhs.rows, INVALID, note=str(err))
    relative = claim.tolerance > 0
    quantity = rel if relative else diff
    if diff is None:  # no interval: the point difference is shown, the verdict cannot go beyond it
        d = lhs.mean - rhs.mean
        diff = stats.Interval(d, math.nan, math.nan, "no interval", 0)
        quantity = diff if not relative else stats.Interval(
            d / abs(rhs.mean) if rhs.mean else math.nan, math.nan, math.nan, "no interval", 0)
    t = claim.tolerance if relative else 0.0
    verdict = verdict_of(claim.op, -t, t, quantity.lo, quantity.hi)
    return Comparison(group, lhs.mean, rhs.mean, lhs.rows, rhs.rows, verdict, diff, quantity, relative, note)


def _overall(comparisons: list[Comparison]) -> tuple[str, str]:
    counts = {s: sum(c.verdict == s for c in comparisons) for s in STATUSES}
    ran = len(comparisons) - counts[NOT_RUN]
    for status in (INVALID, CONTRADICTED, INCONCLUSIVE, REPRODUCED):
        if counts[status]:
            break
    else:
        return NOT_RUN, "no group has results on both sides"
    parts = [f"{counts[s]} {s}" for s in (REPRODUCED, CONTRADICTED, INCONCLUSIVE, INVALID) if counts[s]]
    skipped = f"; {counts[NOT_RUN]} not run" if counts[NOT_RUN] else ""
    return status, f"of {ran} group(s): {', '.join(parts)}{skipped}"


def evaluate(claim: Claim, df, tables: dict | None = None, samples: Samples | None = None) -> Verdict:
    """Judge one claim on the summary table (one row per result) or on ``tables[claim.table]``."""
    store = samples or Samples()
    if claim.table != "summary":
        df = (tables or {}).get(claim.table)
    if df is None or df.empty:
        return Verdict(claim, NOT_RUN, [], f"no {claim.table} results")
    for column in dict.fromkeys((claim.lhs_column, claim.rhs_column)):
        if column not in df.columns:
            return Verdict(claim, NOT_RUN, [], f"column {column} is not in the {claim.table} table (nothing measured it)")
    rows = df[matches(df, claim.where)]
    missing_per = [p for p in claim.per if p not in rows.columns]
    if missing_per:
        return Verdict(claim, NOT_RUN, [], f"per column(s) {', '.join(missing_per)} not in the summary")
    if claim.per:
        selected = rows[matches(rows, claim.lhs) | matches(rows, claim.rhs)]
        groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in selected.groupby(list(claim.per), sort=True)]
    else:
        groups = [((), rows)]
    comparisons = [compare(claim, grows, store, dict(zip(claim.per, key))) for key, grows in groups]
    if not comparisons:
        return Verdict(claim, NOT_RUN, [], "no group has results on both sides")
    status, reason = _overall(comparisons)
    return Verdict(claim, status, comparisons, reason)


def kernel_rows(results_dir: Path):
    """Every row of ``results_dir/kernels/*.json`` (the kernel suite), with its ``profile``; None if none."""
    import pandas as pd

    rows = []
    for path in sorted(Path(results_dir).glob("kernels/*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a partial file from a killed run: its rows count once it is whole
        for row in doc.get("rows", []) if isinstance(doc, dict) else []:
            rows.append({"profile": doc.get("profile", path.stem), "device": doc.get("device"), **row})
    return pd.DataFrame(rows) if rows else None


def scorecard(claims: list[Claim], df, results_dir: Path | None = None, samples: Samples | None = None) -> list[Verdict]:
    tables = {}
    if results_dir is not None and any(c.table == "kernels" for c in claims):
        tables["kernels"] = kernel_rows(results_dir)
    store = samples or Samples(results_dir=results_dir)
    return [evaluate(c, df, tables, store) for c in claims]
