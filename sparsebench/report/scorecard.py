"""The claims scorecard as HTML: one row per claim, its status and the numbers it compared."""

from __future__ import annotations

import html
from collections import Counter

from sparsebench.claims import NOT_REPRODUCED, NOT_RUN, REPRODUCED, Verdict

BADGE = {REPRODUCED: ("reproduced", "ok"), NOT_REPRODUCED: ("not reproduced", "fail"), NOT_RUN: ("not run", "skip")}


def counts_line(verdicts: list[Verdict]) -> str:
    c = Counter(v.status for v in verdicts)
    return f"{c[REPRODUCED]} reproduced, {c[NOT_REPRODUCED]} not reproduced, {c[NOT_RUN]} not run"


def scorecard_html(verdicts: list[Verdict], claims_dir: str) -> str:
    if not verdicts:
        return (f"<p class='scorecard-empty'>No claims found in <code>{html.escape(claims_dir)}</code> "
                "(one YAML file per family, format in claims/README.md).</p>")
    rows = []
    for v in verdicts:
        text, cls = BADGE[v.status]
        c = v.claim
        numbers = "".join(f"<li>{html.escape(cmp.describe(c))}</li>" for cmp in v.comparisons)
        detail = f"<ul>{numbers}</ul>" if numbers else ""
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
