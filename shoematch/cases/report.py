"""The exported case report, as HTML and as PDF (ReportLab): the original's SHA-256, every
preparation step, the mask, filters, model and index versions, the ranking, heat maps of the
candidates an examiner marked, the decisions and notes, and timestamps."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import UTC, datetime

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Image,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from shoematch.cases.heatmap import heatmap_png
from shoematch.cases.preparation import Preparation, describe
from shoematch.data.images import decode_image

REPORT_ROWS = 100  # the ranked list shown per query (the page pages through the top 100)


def _facts(query: dict) -> list[tuple[str, str]]:
    upload = query["upload"]
    return [
        ("searched", f"{query['created_at']} by {query['created_by']}"),
        ("original image", f"{upload['filename']} ({upload['format']}, "
                           f"{upload['width']}x{upload['height']})"),
        ("original SHA-256", upload["sha256"]),
        ("prepared print SHA-256", query["print_sha256"]),
        ("mask SHA-256", query["mask_sha256"]),
        ("filters", json.dumps(query["filters"], sort_keys=True)),
        ("k", str(query["k"])),
        ("index version", query["index_version"]),
        ("model", query["model_uri"]),
        ("ranking digest", query["result_digest"]),
    ]


def _marked(query: dict) -> list[dict]:
    """Ranked candidates with a decision, in rank order."""
    return [r for r in query["results"] if r["model_id"] in query["decisions"]]


def _heatmap(query: dict, print_png: bytes, result: dict) -> bytes:
    return heatmap_png(result["cell_scores"], query["visible_cells"],
                       decode_image(print_png, "prepared print"))


def _steps(query: dict) -> list[str]:
    steps = describe(Preparation.model_validate(query["preparation"]), query["index_px_per_cm"])
    searched = query["placement"]
    if searched:
        chosen = searched["chosen"]
        tried = ", ".join(f"x={t['x']:.0f}: {t['top_score']:.3f}" for t in searched["tried"])
        steps.append(f"placement chosen: x={chosen['x']:.1f}, y={chosen['y']:.1f} px (best "
                     f"top score; tried {tried})")
    return steps


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def case_html(case: dict, images: dict[int, tuple[bytes, bytes]]) -> str:
    """A self-contained HTML report (images inline)."""
    e = html.escape
    created = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Case "
             f"{e(case['id'])}</title><style>body{{font:14px sans-serif;margin:2em}}"
             "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
             "img{border:1px solid #999;margin:4px;image-rendering:pixelated}</style></head>"
             f"<body><h1>Case {e(case['id'])}: {e(case['title'])}</h1>"
             f"<p>Opened {e(case['created_at'])} by {e(case['created_by'])}. "
             f"Report generated {created}.</p>"]
    for query in case["queries"]:
        print_png, mask_png = images[query["id"]]
        parts.append(f"<h2>Query {query['id']}</h2><table>")
        parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _facts(query)]
        parts.append("</table><h3>Preparation</h3><ol>")
        parts += [f"<li>{e(step)}</li>" for step in _steps(query)]
        parts.append(f"</ol><p><img alt='prepared print' src='{_data_url(print_png)}'>"
                     f"<img alt='mask' src='{_data_url(mask_png)}'><br>prepared print as "
                     "searched (white = ink) · mask (white = visible)</p>")
        parts.append("<h3>Decisions</h3><table><tr><th>rank</th><th>model</th><th>decision"
                     "</th><th>note</th><th>by</th><th>at</th><th>heat map</th></tr>")
        for result in _marked(query):
            d = query["decisions"][result["model_id"]]
            parts.append(
                f"<tr><td>{result['rank']}</td><td>{e(result['model_id'])}</td>"
                f"<td>{e(d['decision'])}</td><td>{e(d['note'])}</td><td>{e(d['by'])}</td>"
                f"<td>{e(d['at'])}</td><td><img alt='heat map {e(result['model_id'])}' "
                f"src='{_data_url(_heatmap(query, print_png, result))}'></td></tr>")
        parts.append("</table><h3>Ranking</h3><table><tr><th>rank</th><th>model</th>"
                     "<th>score</th><th>instance</th><th>descriptors</th></tr>")
        parts += [f"<tr><td>{r['rank']}</td><td>{e(r['model_id'])}</td>"
                  f"<td>{r['score']:.4f}</td><td>{e(r['instance_id'])}</td>"
                  f"<td>{e(' '.join(r['descriptors']))}</td></tr>"
                  for r in query["results"][:REPORT_ROWS]]
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _png_flowable(png: bytes, width_mm: float) -> Image:
    image = Image(io.BytesIO(png))
    ratio = image.imageHeight / image.imageWidth
    image.drawWidth, image.drawHeight = width_mm * mm, width_mm * mm * ratio
    return image


def _table(rows: list[list], widths: list[float] | None = None) -> Table:
    table = Table(rows, colWidths=widths, repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                               ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]))
    return table


def case_pdf(case: dict, images: dict[int, tuple[bytes, bytes]]) -> bytes:
    """The same report as a PDF (A4)."""
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    story: list = [
        Paragraph(f"Case {html.escape(case['id'])}: {html.escape(case['title'])}",
                  styles["Title"]),
        Paragraph(f"Opened {case['created_at']} by {html.escape(case['created_by'])}. Report "
                  f"generated {datetime.now(UTC).isoformat(timespec='seconds')}.",
                  styles["BodyText"]),
    ]
    for query in case["queries"]:
        print_png, mask_png = images[query["id"]]
        story += [Spacer(1, 4 * mm), Paragraph(f"Query {query['id']}", styles["Heading2"]),
                  _table([["field", "value"]] + [[k, Paragraph(html.escape(v), small)]
                                                 for k, v in _facts(query)],
                         [40 * mm, 130 * mm]),
                  Paragraph("Preparation", styles["Heading3"])]
        story += [Paragraph(f"{i}. {html.escape(step)}", small)
                  for i, step in enumerate(_steps(query), start=1)]
        story += [Spacer(1, 2 * mm),
                  Table([[_png_flowable(print_png, 80), _png_flowable(mask_png, 80)],
                         ["prepared print (as searched)", "mask (visible region)"]]),
                  Paragraph("Decisions", styles["Heading3"])]
        rows = [["rank", "model", "decision", "note", "by / at", "heat map"]]
        for result in _marked(query):
            d = query["decisions"][result["model_id"]]
            rows.append([str(result["rank"]), result["model_id"], d["decision"],
                         Paragraph(html.escape(d["note"]), small),
                         Paragraph(f"{html.escape(d['by'])}<br/>{d['at']}", small),
                         _png_flowable(_heatmap(query, print_png, result), 45)])
        story.append(_table(rows, [10 * mm, 22 * mm, 22 * mm, 40 * mm, 30 * mm, 48 * mm]))
        story.append(Paragraph("Ranking", styles["Heading3"]))
        story.append(_table([["rank", "model", "score", "instance", "descriptors"]] + [
            [str(r["rank"]), r["model_id"], f"{r['score']:.4f}", r["instance_id"],
             " ".join(r["descriptors"])] for r in query["results"][:REPORT_ROWS]]))
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title=f"Case {case['id']}",
                      leftMargin=15 * mm, rightMargin=15 * mm).build(story)
    return buffer.getvalue()
