"""Consecutive stretches of wall time, named: where a job's time goes between its timers."""

from __future__ import annotations

import time


class Laps:
    """``lap(name)`` adds the seconds since the previous lap (or the start) to ``parts[name]``."""

    def __init__(self, parts: dict | None = None, start: float | None = None):
        self.parts = {} if parts is None else parts
        self.last = time.perf_counter() if start is None else start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.parts[name] = self.parts.get(name, 0.0) + now - self.last
        self.last = now
