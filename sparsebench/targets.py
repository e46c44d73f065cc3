"""Sparsity targets: a requested sparsity and the pattern it must follow.

Patterns
--------
``unstructured``  any entry may be zero.
``n:m``           in every group of ``m`` consecutive weights along the input
                  dimension at most ``n`` are non-zero (2:4 keeps 2 of 4), so the
                  sparsity is ``1 - n/m``.
``block:b``       whole ``b x b`` tiles are zero.
``channel``       whole input channels (columns) are zero.
``head``          whole attention heads are zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sparsebench.errors import ConfigError

PATTERN_KINDS = ("unstructured", "n:m", "block", "channel", "head")
_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^block:(\d+)$")


@dataclass(frozen=True, order=True)
class Pattern:
    kind: str
    n: int = 0
    m: int = 0
    block: int = 0

    @classmethod
    def parse(cls, text: str, where: str = "pattern") -> "Pattern":
        text = str(text).strip().lower()
        if text in ("unstructured", "channel", "head"):
            return cls(text)
        nm = _NM.match(text)
        if nm:
            n, m = int(nm.group(1)), int(nm.group(2))
            if m < 1 or n < 1 or n >= m:
                raise ConfigError(
                    f"{where}={text!r}: an N:M pattern needs 1 <= N < M (N kept of every M), e.g. '2:4'"
                )
            return cls("n:m", n=n, m=m)
        blk = _BLOCK.match(text)
        if blk:
            b = int(blk.group(1))
            if b < 1:
                raise ConfigError(f"{where}={text!r}: block size must be >= 1")
            return cls("block", block=b)
        raise ConfigError(
            f"{where}={text!r} is not a pattern; allowed: 'unstructured', 'N:M' (e.g. '2:4'), "
            "'block:B' (e.g. 'block:16'), 'channel', 'head'"
        )

    def __str__(self) -> str:
        if self.kind == "n:m":
            return f"{self.n}:{self.m}"
        if self.kind == "block":
            return f"block:{self.block}"
        return self.kind


@dataclass(frozen=True, order=True)
class Target:
    """What a method is asked for: ``sparsity`` (fraction of zeros) under ``pattern``."""

    sparsity: float
    pattern: Pattern = Pattern("unstructured")

    @classmethod
    def from_config(cls, raw: dict | str | float, where: str = "target") -> "Target":
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = {"sparsity": raw}
        elif isinstance(raw, str):
            raw = {"pattern": raw} if ":" in raw or raw.isalpha() else {"sparsity": float(raw)}
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}={raw!r}: a target is a mapping with 'sparsity' and/or 'pattern'")
        unknown = set(raw) - {"sparsity", "pattern"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: 'sparsity', 'pattern'")
        pattern = Pattern.parse(raw.get("pattern", "unstructured"), f"{where}.pattern")
        if pattern.kind == "n:m":
            implied = 1.0 - pattern.n / pattern.m
            s = raw.get("sparsity", implied)
            if abs(float(s) - implied) > 1e-9:
                raise ConfigError(
                    f"{where}.sparsity={s} contradicts pattern {pattern} (which fixes sparsity {implied:g}); "
                    "leave sparsity out for N:M targets"
                )
            return cls(implied, pattern)
        if "sparsity" not in raw:
            raise ConfigError(f"{where}: missing key 'sparsity' (a number in [0, 1)) for pattern {pattern}")
        s = raw["sparsity"]
        if isinstance(s, bool) or not isinstance(s, (int, float)):
            raise ConfigError(f"{where}.sparsity={s!r} is not a number; allowed: a number in [0, 1)")
        if not 0.0 <= float(s) < 1.0:
            raise ConfigError(f"{where}.sparsity={s} is outside [0, 1)")
        return cls(float(s), pattern)

    @property
    def label(self) -> str:
        """Short label used in tables and figures: '50%', '2:4', 'block:16 50%'."""
        if self.pattern.kind == "n:m":
            return str(self.pattern)
        pct = f"{self.sparsity * 100:g}%"
        return pct if self.pattern.kind == "unstructured" else f"{self.pattern} {pct}"

    def to_dict(self) -> dict:
        return {"sparsity": self.sparsity, "pattern": str(self.pattern)}

    @classmethod
    def from_dict(cls, d: dict) -> "Target":
        return cls.from_config(d)


DENSE = Target(0.0)
