"""The environment section: what produced the results (versions, commits, machines, data)."""

from __future__ import annotations

import html

import pandas as pd


def _kv_table(pairs: list[tuple[str, str]], cls: str = "kv") -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)
    return f"<table class='{cls}'>{rows}</table>"


def environment_html(df: pd.DataFrame) -> str:
    envs = df.attrs.get("environments", [])
    parts = []
    if len(envs) > 1:
        parts.append(f"<p class='warn'>The results come from {len(envs)} different environments "
                     "(commits, package versions or machines differ); each is listed below.</p>")
    for i, env in enumerate(envs):
        commit = env.get("commit") or "unknown"
        if env.get("dirty"):
            commit += " (with uncommitted changes)"
        pairs = [("results", env.get("results")), ("commit", commit), ("python", env.get("python")),
                 ("platform", env.get("platform")), ("CPU", f"{env.get('cpu')} ({env.get('cpu_count')} cores, "
                                                            f"{env.get('threads')} torch threads)"),
                 ("GPU", env.get("gpu") or "none"), ("host", env.get("hostname"))]
        pairs += [(name, version) for name, version in sorted((env.get("packages") or {}).items())]
        title = f"<h3>Environment {i + 1}</h3>" if len(envs) > 1 else ""
        parts.append(title + _kv_table(pairs))
    hw = df.attrs.get("hardware", {})
    if hw:
        rows = [(name, ", ".join(f"{k}={v}" for k, v in p.items() if k != "name")) for name, p in sorted(hw.items())]
        parts.append("<h3>Hardware profiles</h3>" + _kv_table(rows))
    tasks = df.attrs.get("tasks", {})
    if tasks:
        rows = []
        for name, t in sorted(tasks.items()):
            params = ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items()))
            rows.append((name, f"{params}; data: {'; '.join(t['data_hashes']) or 'n/a'}"))
        parts.append("<h3>Tasks and data</h3>" + _kv_table(rows))
    return "".join(parts) or "<p>No results, so no environment to show.</p>"
