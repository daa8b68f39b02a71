"""The demo's HTML report is self-contained: every picture is an embedded PNG that decodes."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import numpy as np

from shoematch.data.images import decode_image, encode_png
from shoematch.retrieval.html_report import ReportMatch, ReportQuery, render_report


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
    page = render_report("demo", [("all", {"queries": 1, "hit@10": "1.000"})], [query])
    parser = Images()
    parser.feed(page)
    assert len(parser.sources) == 4  # print, mask, two matches
    for source in parser.sources:
        prefix, data = source.split(",", 1)
        assert prefix == "data:image/png;base64"
        assert decode_image(base64.b64decode(data), "embedded").shape == (8, 16)
    assert "M&lt;2&gt;" in page and 'class="correct"' in page and "hit@10" in page
