"""The environment section: what produced the results (versions, commits, machines, data)."""

from __future__ import annotations

import html

import pandas as pd


def _kv_table(pairs: list[tuple[str, str]], cls: str = "kv") -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)
    return f"<table class='{cls}'>{rows}</table>"


def _env_rows(env: dict) -> dict[str, str]:
    commit = env.get("commit") or "unknown"
    if env.get("dirty"):
        commit += " (with uncommitted changes)"
    rows = {"results": env.get("results"), "commit": commit, "python": env.get("python"),
            "platform": env.get("platform"),
            "CPU": f"{env.get('cpu')} ({env.get('cpu_count')} cores, {env.get('threads')} torch threads)",
            "GPU": env.get("gpu") or "none", "host": env.get("hostname")}
    rows.update(sorted((env.get("packages") or {}).items()))
    return {k: str(v) for k, v in rows.items()}


def environment_html(df: pd.DataFrame) -> str:
    """One column per distinct environment; rows that differ between them are marked."""
    envs = [_env_rows(e) for e in df.attrs.get("environments", [])]
    parts = []
    if len(envs) > 1:
        parts.append(f"<p class='warn'>The results come from {len(envs)} different environments (marked rows "
                     "differ: commits, package versions or machines).</p>")
    if envs:
        keys = list(dict.fromkeys(k for e in envs for k in e))
        head = "".join(f"<th>environment {i + 1}</th>" for i in range(len(envs))) if len(envs) > 1 else "<th></th>"
        body = []
        for k in keys:
            values = [e.get(k, "") for e in envs]
            differs = len(set(values)) > 1 and k != "results"
            cells = "".join(f"<td>{html.escape(v)}</td>" for v in values)
            body.append(f"<tr{' class=differs' if differs else ''}><th>{html.escape(k)}</th>{cells}</tr>")
        parts.append(f"<table class='kv env'><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}"
                     "</tbody></table>")
    hw = df.attrs.get("hardware", {})
    if hw:
        try:  # the profile files add what the results do not record (description, peaks, backends)
            from sparsebench.hardware import profiles

            files = profiles()
        except Exception:
            files = {}
        rows = []
        for name, p in sorted(hw.items()):
            facts = [f"{k}={v}" for k, v in p.items() if k != "name"]
            f = files.get(name)
            if f is not None:
                facts = ([f.description] if f.description else []) + facts
                facts += [f"peak {k}={v}" for k, v in sorted(f.peak.items())] if f.peak else []
                facts += [f"backends={', '.join(f.backends)}"] if f.backends else []
            rows.append((name, "; ".join(facts)))
        parts.append("<h3>Hardware profiles</h3>" + _kv_table(rows))
    tasks = df.attrs.get("tasks", {})
    if tasks:
        rows = []
        for name, t in sorted(tasks.items()):
            params = ", ".join(f"{k}={v}" for k, v in sorted(t["params"].items()))
            rows.append((name, f"{params}; data: {'; '.join(t['data_hashes']) or 'n/a'}"))
        parts.append("<h3>Tasks and data</h3>" + _kv_table(rows))
    return "".join(parts) or "<p>No results, so no environment to show.</p>"
