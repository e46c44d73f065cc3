"""Claims from the papers: what they compare (loading, validation, row selection).

A claim (one entry of ``claims/<family>.yaml``, format in ``claims/README.md``)
compares one summary column over two selections of rows, e.g. perplexity of
SparseGPT at 50 % against magnitude at 50 %, in every group of ``per`` (every
task, say). How it is judged (reproduced, contradicted, inconclusive, invalid,
not run, from the interval of the difference) is :mod:`sparsebench.verdicts`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sparsebench.errors import ConfigError

OPS = ("<", "<=", ">", ">=", "~=")
# Summary columns a selector may name without a dot; dotted names (param.alpha, latency_ms.a100) are free.
COLUMNS = ("task", "family", "method", "pattern", "target_sparsity", "target_label", "seed", "hardware",
           "measured_sparsity", "run_id", "commit", "data_hash")
TEXT_COLUMNS = ("task", "family", "method", "pattern", "target_label", "hardware")
REQUIRED = ("id", "paper", "statement", "metric", "lhs", "op", "rhs")
OPTIONAL = ("where", "tolerance", "per", "note", "table", "lhs_metric", "rhs_metric")
# What a claim is checked on: the summary (one row per result) or the kernel suite's rows
# (results/kernels/<profile>.json, one row per timed case, plus a ``profile`` column).
TABLES = ("summary", "kernels")
_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    statement: str
    metric: str
    lhs: dict
    op: str
    rhs: dict
    where: dict = field(default_factory=dict)
    tolerance: float = 0.0
    per: tuple = ()
    note: str = ""
    source: str = ""
    table: str = "summary"
    lhs_metric: str = ""  # a side's own metric (two metrics of the same rows); default: metric
    rhs_metric: str = ""

    def _column_of(self, metric: str) -> str:
        if self.table != "summary" or "." in metric or metric in COLUMNS:
            return metric
        return f"metric.{metric}"

    @property
    def column(self) -> str:
        """The column compared: on the summary ``metric.<metric>`` unless ``metric`` already names a
        column; on other tables the column ``metric`` itself (e.g. ``speedup``)."""
        return self._column_of(self.metric)

    @property
    def lhs_column(self) -> str:
        return self._column_of(self.lhs_metric or self.metric)

    @property
    def rhs_column(self) -> str:
        return self._column_of(self.rhs_metric or self.metric)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


def _side_text(side: dict) -> str:
    if "value" in side:
        return "constant"
    return " ".join(str(v) if not isinstance(v, list) else "|".join(map(str, v)) for v in side.values()) or "all rows"


# ---------------------------------------------------------------- loading and validation

def _check_selector(raw, where: str, allow_value: bool, table: str = "summary") -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}={raw!r}: a selector is a mapping of summary column -> value (or list of values)")
    if "value" in raw:
        if not allow_value:
            raise ConfigError(f"{where}: 'value' (a constant) is allowed only in lhs or rhs")
        if set(raw) != {"value"} or isinstance(raw["value"], bool) or not isinstance(raw["value"], (int, float)):
            raise ConfigError(f"{where}={raw!r}: a constant side is exactly {{value: <number>}}")
        return {"value": float(raw["value"])}
    out = {}
    for key, value in raw.items():
        key = str(key)
        if table == "summary" and "." not in key and key not in COLUMNS:
            raise ConfigError(f"{where}.{key}: not a summary column; allowed: {', '.join(COLUMNS)}, "
                              "or a dotted column such as param.<name>, metric.<name>, latency_ms.<profile>")
        values = value if isinstance(value, list) else [value]
        if not values or any(isinstance(v, (dict, list)) or v is None for v in values):
            raise ConfigError(f"{where}.{key}={value!r}: give a scalar or a non-empty list of scalars")
        if table == "summary" and key in TEXT_COLUMNS and any(not isinstance(v, str) for v in values):
            raise ConfigError(f"{where}.{key}={value!r}: must be text; quote it (YAML reads 2:4 unquoted as the "
                              "number 124 and 50% needs quotes too), e.g. {key}: \"2:4\"")
        out[key] = value
    return out


def parse_claim(raw, where: str) -> Claim:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a claim is a mapping with keys {', '.join(REQUIRED)} (got {type(raw).__name__})")
    cid = raw.get("id")
    here = f"{where} (id {cid!r})" if cid is not None else where
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{here}: missing key(s) {', '.join(missing)}; a claim needs {', '.join(REQUIRED)}")
    unknown = sorted(set(map(str, raw)) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ConfigError(f"{here}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(REQUIRED + OPTIONAL)}")
    if not isinstance(cid, str) or not _ID.match(cid):
        raise ConfigError(f"{where}: id={cid!r} must be kebab-case text, e.g. sparsegpt-beats-magnitude-at-50")
    for key in ("paper", "statement", "metric", "lhs_metric", "rhs_metric"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise ConfigError(f"{here}: {key}={raw[key]!r} must be non-empty text")
    if raw["op"] not in OPS:
        raise ConfigError(f"{here}: op={raw['op']!r} is not allowed; allowed: {', '.join(OPS)}")
    table = raw.get("table", "summary")
    if table not in TABLES:
        raise ConfigError(f"{here}: table={table!r} is not allowed; allowed: {', '.join(TABLES)}")
    tol = raw.get("tolerance", 0.0)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol) or math.isinf(tol):
        raise ConfigError(f"{here}: tolerance={tol!r} must be a finite number >= 0 (relative slack)")
    per = raw.get("per") or ()
    per = (per,) if isinstance(per, str) else per
    if not isinstance(per, (list, tuple)) or any(not isinstance(p, str) for p in per):
        raise ConfigError(f"{here}: per={raw.get('per')!r} must be a column name or a list of them")
    for p in per:
        _check_selector({p: "x"}, f"{here}: per", allow_value=False, table=table)
    lhs = _check_selector(raw["lhs"], f"{here}: lhs", allow_value=True, table=table)
    rhs = _check_selector(raw["rhs"], f"{here}: rhs", allow_value=True, table=table)
    if "value" in lhs and "value" in rhs:
        raise ConfigError(f"{here}: lhs and rhs are both constants; at least one side must select results")
    return Claim(id=cid, paper=raw["paper"], statement=raw["statement"], metric=raw["metric"], lhs=lhs,
                 op=raw["op"], rhs=rhs,
                 where=_check_selector(raw.get("where"), f"{here}: where", allow_value=False, table=table),
                 tolerance=float(tol), per=tuple(per), note=str(raw.get("note") or ""), source=where, table=table,
                 lhs_metric=raw.get("lhs_metric", ""), rhs_metric=raw.get("rhs_metric", ""))


def load_claims(claims_dir: Path) -> list[Claim]:
    """Every claim of ``claims_dir/*.yaml`` (sorted by file), validated; ids are unique across files."""
    claims, seen = [], {}
    for path in sorted(Path(claims_dir).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if data is None:
            continue
        if not isinstance(data, list):
            raise ConfigError(f"{path}: must be a list of claims (entries starting with '- id: ...')")
        for i, raw in enumerate(data):
            claim = parse_claim(raw, f"{path.name}[{i}]")
            if claim.id in seen:
                raise ConfigError(f"{path.name}[{i}]: id {claim.id!r} is already used by {seen[claim.id]}")
            seen[claim.id] = claim.source
            claims.append(claim)
    return claims


# ---------------------------------------------------------------- evaluation

def matches(df, selector: dict):
    import numpy as np
    import pandas as pd

    mask = pd.Series(True, index=df.index)
    for key, value in selector.items():
        if key not in df.columns:
            return pd.Series(False, index=df.index)
        values = value if isinstance(value, list) else [value]
        col = df[key]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            nums = []
            for v in values:
                try:
                    nums.append(float(v))
                except (TypeError, ValueError):
                    pass
            hit = pd.Series(False, index=df.index)
            for v in nums:
                hit |= np.isclose(col.astype(float), v, rtol=1e-9, atol=1e-12)
        else:
            hit = col.astype(str).isin([str(v) for v in values])
        mask &= hit
    return mask


def __getattr__(name):
    # the verdict side lives in sparsebench.verdicts; these names stay importable from here
    if name in ("REPRODUCED", "CONTRADICTED", "INCONCLUSIVE", "INVALID", "NOT_RUN", "Comparison", "Verdict",
                "evaluate", "scorecard", "kernel_rows"):
        from sparsebench import verdicts

        return getattr(verdicts, name)
    raise AttributeError(f"module 'sparsebench.claims' has no attribute {name!r}")
