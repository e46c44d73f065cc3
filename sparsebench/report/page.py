"""The HTML page: one file, no external assets (figures are inlined as PNG data URIs)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}h3{margin-top:1.5em}
nav ul{columns:2;list-style:none;padding-left:0}nav li{margin:.15em 0}
figure{display:inline-block;margin:.8em 1em .8em 0;vertical-align:top;max-width:100%}
figure img{max-width:100%;width:620px;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}caption{caption-side:bottom;font-size:.85em;color:#555;
text-align:left;padding-top:.4em}th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
thead th{border-bottom:2px solid #444}table.paper td:nth-child(-n+2),table.paper th:nth-child(-n+2){text-align:left}
tr.group-start td{border-top:1.5px solid #888}
table.kv th{text-align:left;font-weight:600;vertical-align:top;white-space:nowrap}table.kv td{text-align:left}
table.scorecard td,table.scorecard th{text-align:left;vertical-align:top}table.scorecard ul{margin:.3em 0;padding-left:1.2em}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:.85em;white-space:nowrap;color:#fff}
.badge.ok{background:#2e7d32}.badge.fail{background:#c62828}.badge.skip{background:#9e9e9e}
.badge.unsure{background:#ef6c00}.badge.invalid{background:#6a1b9a}table.comparisons{margin:.4em 0;font-size:.85em}table.comparisons td,table.comparisons th{text-align:left}
.paper,.cid,.why,.note{font-size:.85em;color:#555}.warn{background:#fff3cd;padding:.5em;border-left:4px solid #e0a800}
code{background:#f4f4f4;padding:0 3px}tr.differs th,tr.differs td{background:#fff3cd}
"""


def figure_html(name: str, png: Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode()
    n = html.escape(name)
    return (f"<figure id='fig-{n}' class='figure'><img alt='{n}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{n} (<a href='figures/{n}.png'>PNG</a>, <a href='figures/{n}.pdf'>PDF</a>; "
            f"<code>sparsebench report --figure {n}</code>)</figcaption></figure>")


def anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def page(title: str, intro: str, sections: list[tuple[str, str, str]], footer: str) -> str:
    """sections: (anchor id, heading, inner HTML) as H2 blocks, listed in the table of contents."""
    toc = "".join(f"<li><a href='#{a}'>{html.escape(h)}</a></li>" for a, h, _ in sections)
    body = "".join(f"<section id='{a}'><h2>{html.escape(h)}</h2>{inner}</section>" for a, h, inner in sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{intro}<nav><ul>{toc}</ul></nav>{body}"
            f"<footer><p><small>{footer}</small></p></footer></body></html>")
