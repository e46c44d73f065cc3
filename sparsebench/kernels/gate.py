"""The kernel-speed regression gate: this run's speed-ups against a stored baseline.

Only ratios measured within one run (sparse time over dense time, interleaved)
are compared, never absolute times, so the gate holds across machines of a
profile. A kernel fails when its speed-up falls below
``baseline_speedup * (1 - tolerance)``, or when it no longer runs at all.

Baseline file (``hardware/baselines/<profile>.json``)::

    {"profile": "cpu", "kernel_set": "small", "tolerance": 0.6,
     "source": {...what run it was made from...},
     "kernels": {"<case id>": {"speedup": 1.3, "ideal_speedup": 2.0, "tolerance": 0.2 (optional)}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Failure:
    id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.id}: {self.reason}"


SHORT_MS = 0.010  # kernels this short are dominated by launch and tail effects: their ratios move more
SHORT_TOLERANCE = 0.5


def make_baseline(run: dict, tolerance: float, ids=None) -> dict:
    """A baseline from a run's ok rows; kernels shorter than ``SHORT_MS`` on a GPU get at least
    ``SHORT_TOLERANCE`` (seen on an H100: a 3 us kernel's speed-up moved by 30 % between two runs)."""
    rows = [r for r in run["rows"] if r["status"] == "ok" and (ids is None or r["id"] in ids)]
    short = lambda r: run.get("device", "cpu") != "cpu" and min(r["dense_ms"], r["sparse_ms"]) < SHORT_MS  # noqa: E731
    return {
        "profile": run["profile"],
        "kernel_set": run["kernel_set"],
        "tolerance": tolerance,
        "source": {k: run.get(k) for k in ("device", "dtype", "threads", "created")}
        | {"commit": run.get("environment", {}).get("commit"),
           "torch": run.get("environment", {}).get("packages", {}).get("torch")},
        "kernels": {r["id"]: {"speedup": round(r["speedup"], 4), "ideal_speedup": round(r["ideal_speedup"], 4)}
                    | ({"tolerance": max(tolerance, SHORT_TOLERANCE)} if short(r) else {}) for r in rows},
    }


def load_baseline(path: Path) -> dict:
    data = json.loads(Path(path).read_text())
    for key in ("profile", "tolerance", "kernels"):
        if key not in data:
            raise ValueError(f"{path}: baseline lacks key {key!r}")
    return data


def check(run: dict, baseline: dict, tolerance: float | None = None) -> list[Failure]:
    """Every baseline kernel that this run slowed (relative to dense) beyond the tolerance, or lost."""
    rows = {r["id"]: r for r in run["rows"]}
    failures = []
    for kid, base in sorted(baseline["kernels"].items()):
        tol = tolerance if tolerance is not None else base.get("tolerance", baseline["tolerance"])
        floor = base["speedup"] * (1.0 - tol)
        row = rows.get(kid)
        if row is None:
            failures.append(Failure(kid, "not measured in this run"))
        elif row["status"] != "ok":
            failures.append(Failure(kid, f"{row['status']}: {row.get('reason', '')}"))
        elif row["speedup"] < floor:
            failures.append(Failure(kid, f"speed-up {row['speedup']:.3f}x < {floor:.3f}x "
                                         f"(baseline {base['speedup']:.3f}x, tolerance {tol:.0%})"))
    return failures
