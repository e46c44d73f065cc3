"""The claims scorecard as HTML: one row per claim, its verdict, and per group the two numbers, their
difference with its 95 % interval and the group's verdict."""

from __future__ import annotations

import html
from collections import Counter

from sparsebench.verdicts import CONTRADICTED, INCONCLUSIVE, INVALID, NOT_RUN, REPRODUCED, STATUSES, Verdict

BADGE = {REPRODUCED: "ok", CONTRADICTED: "fail", INCONCLUSIVE: "unsure", INVALID: "invalid", NOT_RUN: "skip"}


def counts_line(verdicts: list[Verdict]) -> str:
    c = Counter(v.status for v in verdicts)
    return ", ".join(f"{c[s]} {s}" for s in STATUSES)


def _number(v) -> str:
    if v is None or v != v:
        return "–"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


def _interval_cell(cmp) -> str:
    q = cmp.quantity
    if q is None:
        return ""
    if cmp.relative:
        text = f"{q.estimate:+.2%}" + (f" [{q.lo:+.2%}, {q.hi:+.2%}]" if q.lo == q.lo and q.hi == q.hi else "")
    else:
        text = f"{q.estimate:+.4g}" + (f" [{q.lo:+.4g}, {q.hi:+.4g}]" if q.lo == q.lo and q.hi == q.hi else "")
    return f"{html.escape(text)}<div class='why'>{html.escape(q.method)}</div>"


def comparisons_table(v: Verdict) -> str:
    """Per group: the two numbers, the difference (relative where the claim has a tolerance), its 95 % interval
    and the group's verdict."""
    if not v.comparisons:
        return ""
    rel = v.claim.tolerance > 0
    head = ("<tr><th>group</th><th>lhs</th><th>rhs</th><th>" + ("(lhs − rhs) / |rhs|" if rel else "lhs − rhs")
            + " [95 % CI]</th><th>verdict</th></tr>")
    body = []
    for cmp in v.comparisons:
        group = ", ".join(str(x) for x in cmp.group.values()) or "all rows"
        note = f"<div class='why'>{html.escape(cmp.note)}</div>" if cmp.note else ""
        body.append(f"<tr><td>{html.escape(group)}</td><td>{_number(cmp.lhs)} <span class='why'>({cmp.lhs_rows})</span>"
                    f"</td><td>{_number(cmp.rhs)} <span class='why'>({cmp.rhs_rows})</span></td>"
                    f"<td>{_interval_cell(cmp)}</td><td><span class='badge {BADGE[cmp.verdict]}'>"
                    f"{html.escape(cmp.verdict)}</span>{note}</td></tr>")
    return f"<table class='comparisons'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def scorecard_html(verdicts: list[Verdict], claims_dir: str) -> str:
    if not verdicts:
        return (f"<p class='scorecard-empty'>No claims found in <code>{html.escape(claims_dir)}</code> "
                "(one YAML file per family, format in claims/README.md).</p>")
    rows = []
    for v in verdicts:
        text, cls = v.status, BADGE[v.status]
        c = v.claim
        detail = comparisons_table(v)
        why = f"<div class='why'>{html.escape(v.reason)}</div>" if v.reason else ""
        note = f"<div class='note'>{html.escape(c.note)}</div>" if c.note else ""
        rows.append(
            f"<tr class='claim {cls}' id='claim-{html.escape(c.id)}'><td><span class='badge {cls}'>{text}</span></td>"
            f"<td><b>{html.escape(c.statement)}</b><div class='paper'>{html.escape(c.paper)}</div>"
            f"<div class='cid'>{html.escape(c.id)} ({html.escape(c.source)})</div>{note}</td>"
            f"<td><code>{html.escape(c.lhs_column)}</code> {html.escape(c.op)}"
            f"{f' <code>{html.escape(c.rhs_column)}</code>' if c.rhs_column != c.lhs_column else ''}"
            f"{f' (tol. {c.tolerance:g})' if c.tolerance else ''}{why}{detail}</td></tr>")
    return (f"<p class='scorecard-counts'>{counts_line(verdicts)} "
            f"(claims from <code>{html.escape(claims_dir)}</code>).</p>"
            "<table class='scorecard'><thead><tr><th>status</th><th>claim</th><th>compared on our results</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
