"""A self-contained HTML report of HTTP search results: each query's print and visible mask
beside its top matches (depth maps of the best instances), correct matches outlined; when no
shown match is correct, the true model's picture and rank follow. Rows fit the window (a grid
that scales the pictures down), so a 1400 px browser shows a whole row.

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
class ReportTruth:
    """The first correct model of a query none of whose shown matches is correct."""

    model_id: str
    rank: int | None  # in the returned ranking; None: not in it at all
    image_png: bytes


@dataclass
class ReportQuery:
    query_id: str
    category: str
    print_png: bytes
    mask_png: bytes
    targets: list[str]
    latency_ms: float
    matches: list[ReportMatch] = field(default_factory=list)
    truth: ReportTruth | None = None


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1800px; }
table.metrics td, table.metrics th { padding: 2px 10px; text-align: right; }
.legend { font-size: 13px; margin: 10px 0; }
.legend span { border: 3px solid #2a9d3a; padding: 0 4px; }
.query { display: grid; grid-template-columns: 130px repeat(8, minmax(0, 1fr)); gap: 8px;
         align-items: start; margin: 12px 0; border-top: 1px solid #ccc; padding-top: 10px; }
figure { margin: 0; text-align: center; font-size: 11px; min-width: 0;
         overflow-wrap: anywhere; }
img { width: 100%; max-width: 192px; image-rendering: pixelated;
      border: 3px solid transparent; box-sizing: border-box; }
.correct img { border-color: #2a9d3a; }
.truth img { border: 3px dashed #2a9d3a; }
.truth figcaption { color: #b03030; }
.meta { font-size: 12px; overflow-wrap: anywhere; }
"""

LEGEND = ("<p class='legend'><span>green frame</span> a correct model (one of the query's "
          "targets). <b>#n</b> rank · model id · score: the match's similarity to the query "
          "(summed over the visible feature cells; higher is closer). A dashed frame on the "
          "right: no shown match was correct, so the true model and its rank in the full "
          "ranking are shown.</p>")


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _truth(truth: ReportTruth | None) -> str:
    if truth is None:
        return ""
    where = f"rank {truth.rank}" if truth.rank else "not in the ranking"
    return (f'<figure class="truth">{_img(truth.image_png, truth.model_id)}<figcaption>'
            f"true: {html.escape(truth.model_id)} · {where}</figcaption></figure>")


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
            f"{matches}{_truth(q.truth)}</div>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<table class='metrics'><tr><th>category</th>{header}</tr>{rows}</table>{LEGEND}"
            f"{''.join(blocks)}</body></html>")
