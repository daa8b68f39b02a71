"""A self-contained HTML report of HTTP search results: each query's print and visible mask
beside its top matches (depth maps of the best instances), correct matches outlined.

Images are embedded as base64 PNG, so the single file opens in any browser, offline."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class ReportMatch:
    model_id: str
    score: float
    image_png: bytes  # the best instance's depth map (or print)
    correct: bool


@dataclass
class ReportQuery:
    query_id: str
    category: str
    print_png: bytes
    mask_png: bytes
    targets: list[str]
    latency_ms: float
    matches: list[ReportMatch] = field(default_factory=list)


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table.metrics td, table.metrics th { padding: 2px 10px; text-align: right; }
.query { display: flex; gap: 10px; align-items: flex-start; margin: 14px 0;
         border-top: 1px solid #ccc; padding-top: 10px; }
figure { margin: 0; text-align: center; font-size: 11px; }
img { width: 192px; image-rendering: pixelated; border: 3px solid transparent; }
.correct img { border-color: #2a9d3a; }
.meta { width: 170px; font-size: 12px; }
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_report(title: str, summary_rows: list[tuple[str, dict]],
                  queries: list[ReportQuery]) -> str:
    header = "".join(f"<th>{html.escape(name)}</th>" for name in summary_rows[0][1]) \
        if summary_rows else ""
    rows = "".join(
        "<tr><th>" + html.escape(label) + "</th>"
        + "".join(f"<td>{value}</td>" for value in values.values()) + "</tr>"
        for label, values in summary_rows)
    blocks = []
    for q in queries:
        matches = "".join(
            f'<figure class="{"correct" if m.correct else ""}">{_img(m.image_png, m.model_id)}'
            f"<figcaption>#{rank} {html.escape(m.model_id)} · {m.score:.2f}</figcaption></figure>"
            for rank, m in enumerate(q.matches, start=1))
        blocks.append(
            f'<div class="query"><div class="meta"><b>{html.escape(q.query_id)}</b><br>'
            f"{html.escape(q.category)}<br>targets: {html.escape(', '.join(q.targets))}<br>"
            f"{q.latency_ms:.0f} ms</div>"
            f"<figure>{_img(q.print_png, 'query print')}<figcaption>query</figcaption></figure>"
            f"<figure>{_img(q.mask_png, 'visible mask')}<figcaption>mask</figcaption></figure>"
            f"{matches}</div>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<table class='metrics'><tr><th></th>{header}</tr>{rows}</table>"
            f"{''.join(blocks)}</body></html>")
