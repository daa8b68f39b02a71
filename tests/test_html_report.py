"""The demo's HTML report is self-contained: every picture is an embedded PNG that decodes."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import numpy as np

from shoematch.data.images import decode_image, encode_png
from shoematch.evaluation.html_report import (
    ReportMatch,
    ReportQuery,
    ReportTruth,
    render_report,
)


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_report_embeds_every_picture():
    png = encode_png(np.full((8, 16), 200, np.uint8))
    query = ReportQuery("Q1", "blood", png, png, ["M1"], 12.5,
                        [ReportMatch("M1", 3.2, png, True), ReportMatch("M<2>", 1.0, png, False)])
    missed = ReportQuery("Q2", "dust", png, png, ["M9"], 10.0,
                         [ReportMatch("M1", 3.0, png, False)], ReportTruth("M9", 37, png))
    page = render_report("demo", [("all", {"queries": 2, "hit@10": "0.500"})], [query, missed])
    parser = Images()
    parser.feed(page)
    assert len(parser.sources) == 8  # print, mask, two matches; print, mask, match, true model
    for source in parser.sources:
        prefix, data = source.split(",", 1)
        assert prefix == "data:image/png;base64"
        assert decode_image(base64.b64decode(data), "embedded").shape == (8, 16)
    assert "M&lt;2&gt;" in page and 'class="correct"' in page and "hit@10" in page
    assert "true: M9 · rank 37" in page and "green frame" in page
