"""The case records without the server: preparation is deterministic and does what each
parameter says, a placement search moves the drawn mask with the print and keeps the best
ranking, bad parameters are named, oversized images are refused from their header, and
cases/queries/decisions land in SQLite and in a real PostgreSQL server with a hash-chained
audit log that names the first tampered entry (also through `python -m jobs.audit verify`)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import text

from shoematch.cases import audit
from shoematch.cases.heatmap import heatmap_png, heatmap_rgb
from shoematch.cases.placement_search import Try, best_try, placement_tries
from shoematch.cases.preparation import (
    Preparation,
    describe,
    parse_preparation,
    placement_candidates,
    prepare,
    shift_mask,
)
from shoematch.cases.records import CaseRecords
from shoematch.cases.report import case_html, case_pdf
from shoematch.cases.users import Users
from shoematch.data.images import check_pixel_budget, decode_image, encode_png
from shoematch.errors import CaseError, CaseNotFound, ImageError, PixelBudgetError, QueryError
from tests.conftest import REPO
from tests.images_bad import bomb_png

CANVAS = (64, 128)


def photo() -> bytes:
    """A dark 'print' (an L-shaped bar) on a light ground, 80×40 px."""
    grey = np.full((40, 80), 230, np.uint8)
    grey[5:35, 10:20] = 20
    grey[25:35, 10:70] = 20
    return encode_png(grey)


def test_preparation_is_deterministic_and_each_step_acts():
    data = photo()
    plain = Preparation(px_per_cm=10)
    first = prepare(data, plain, CANVAS, 10.0)
    assert first.shape == CANVAS and np.array_equal(first, prepare(data, plain, CANVAS, 10.0))
    # Dark ink (20) becomes bright (235: the index has 255 = ink), centred on the canvas.
    assert first[32 - 20 + 5:32 - 20 + 35, 64 - 40 + 10:64 - 40 + 20].min() == 235
    assert first[0, 0] == 0
    light = prepare(data, Preparation(px_per_cm=10, ink="light"), CANVAS, 10.0)
    assert light[32, 64 - 40 + 50] == 230  # ground stays bright when ink is declared light
    half = prepare(data, Preparation(px_per_cm=20), CANVAS, 10.0)
    assert (half > 127).sum() == pytest.approx((first > 127).sum() / 4, rel=0.15)
    turned = prepare(data, Preparation(px_per_cm=10, rotate_deg=90), CANVAS, 10.0)
    assert np.array_equal(turned[:, 44:84], np.rot90(first[12:52, 24:104])[8:72])
    flipped = prepare(data, Preparation(px_per_cm=10, flip_horizontal=True), CANVAS, 10.0)
    assert np.array_equal(flipped[:, 24:104], first[:, 24:104][:, ::-1])
    cropped = prepare(data, Preparation(px_per_cm=10, crop=(0, 0, 40, 40)), CANVAS, 10.0)
    assert (cropped > 127).sum() < (first > 127).sum()
    moved = prepare(data, Preparation(px_per_cm=10, placement={"x": 44, "y": 32}), CANVAS, 10.0)
    assert np.array_equal(moved[:, 4:84], first[:, 24:104])
    steps = describe(Preparation(px_per_cm=20, rotate_deg=12.5), 10.0)
    assert any("12.5°" in s for s in steps) and any("20 px/cm" in s for s in steps)


def test_placement_search_candidates_move_the_mask_with_the_print():
    candidates = placement_candidates(CANVAS)
    assert [(p.x, p.y, shift) for p, shift in candidates] == [
        (64, 32, 0), (45, 32, -19), (83, 32, 19), (26, 32, -38), (102, 32, 38)]
    mask = np.zeros(CANVAS, bool)
    mask[:, 10:20] = True
    assert np.flatnonzero(shift_mask(mask, 5)[0]).tolist() == list(range(15, 25))
    assert np.flatnonzero(shift_mask(mask, -5)[0]).tolist() == list(range(5, 15))
    data = photo()
    (moved, shift) = candidates[2]
    placed = prepare(data, Preparation(px_per_cm=10, placement=moved), CANVAS, 10.0)
    centred = prepare(data, Preparation(px_per_cm=10), CANVAS, 10.0)
    assert np.array_equal(placed[:, shift:], centred[:, :-shift])
    assert "searched by the server" in describe(Preparation(px_per_cm=10, placement="search"),
                                                10.0)[-1]


def ink(image: np.ndarray) -> np.ndarray:
    return image > 127


def test_a_placed_print_is_searched_once_with_its_mask():
    params = Preparation(px_per_cm=10, placement={"x": 50, "y": 32})
    drawn, tries = placement_tries(photo(), params, ink, CANVAS, 10.0)
    image = prepare(photo(), params, CANVAS, 10.0)
    assert len(tries) == 1 and tries[0].placement is None
    assert np.array_equal(tries[0].image, image) and np.array_equal(drawn, ink(image))
    assert np.array_equal(tries[0].visible, drawn)


def test_a_searched_placement_moves_the_mask_drawn_on_the_centred_print():
    params = Preparation(px_per_cm=10, placement="search")
    centred = prepare(photo(), Preparation(px_per_cm=10), CANVAS, 10.0)
    drawn, tries = placement_tries(photo(), params, ink, CANVAS, 10.0)
    assert np.array_equal(drawn, ink(centred))
    candidates = placement_candidates(CANVAS)
    assert [t.placement for t in tries] == [p for p, _ in candidates]
    for t, (placement, shift) in zip(tries, candidates, strict=True):
        moved = params.model_copy(update={"placement": placement})
        assert np.array_equal(t.image, prepare(photo(), moved, CANVAS, 10.0))
        assert np.array_equal(t.visible, shift_mask(drawn, shift))


def test_placements_that_lose_the_mask_are_not_searched():
    def left_edge(image: np.ndarray) -> np.ndarray:  # a mask over columns 24…29 only
        mask = np.zeros(image.shape, bool)
        mask[:, 24:30] = True
        return mask

    params = Preparation(px_per_cm=10, placement="search")
    _, tries = placement_tries(photo(), params, left_edge, CANVAS, 10.0)
    # Shifted 38 px left the mask leaves the canvas; every other placement keeps some of it.
    assert [t.placement.x for t in tries if t.placement] == [64, 45, 83, 102]


def test_no_usable_placement_is_a_clear_error():
    params = Preparation(px_per_cm=10, placement="search")
    with pytest.raises(QueryError, match="place it by hand"):
        placement_tries(photo(), params, lambda image: np.zeros(image.shape, bool), CANVAS,
                        10.0)


def test_the_placement_whose_best_match_scores_highest_is_kept():
    params = Preparation(px_per_cm=10, placement="search")
    _, tries = placement_tries(photo(), params, ink, CANVAS, 10.0)
    rankings = [{"results": [{"score": s}]} if s is not None else {"results": []}
                for s in (0.4, None, 0.9, 0.1, 0.5)]
    best, record = best_try(tries, rankings)
    assert best == 2
    assert record == {"chosen": {"x": 83.0, "y": 32.0}, "tried": [
        {"x": 64.0, "y": 32.0, "top_score": 0.4}, {"x": 45.0, "y": 32.0, "top_score": -np.inf},
        {"x": 83.0, "y": 32.0, "top_score": 0.9}, {"x": 26.0, "y": 32.0, "top_score": 0.1},
        {"x": 102.0, "y": 32.0, "top_score": 0.5}]}
    placed = [Try(None, tries[0].image, tries[0].visible)]
    assert best_try(placed, [{"results": [{"score": 0.3}]}]) == (0, None)


@pytest.mark.parametrize("params, reason", [
    ({"px_per_cm": 1.5}, "px_per_cm must be between 2 and 50"),
    ({"px_per_cm": 60}, "px_per_cm must be between 2 and 50"),
    ({"px_per_cm": 10, "ink": "red"}, "ink"),
    ({"px_per_cm": 10, "levels": {"black": 200, "white": 100}}, "white (100) must be above"),
    ({"px_per_cm": 10, "rotate": 3}, "rotate"),
])
def test_bad_preparation_is_named(params, reason):
    with pytest.raises(QueryError, match=None) as caught:
        parse_preparation(params)
    assert reason in str(caught.value)


def test_bad_crop_and_scale_are_named():
    with pytest.raises(QueryError, match="not inside the 80x40 image"):
        prepare(photo(), Preparation(px_per_cm=10, crop=(0, 0, 90, 40)), CANVAS, 10.0)
    with pytest.raises(QueryError, match="more than 64x the pixels"):
        prepare(photo(), Preparation(px_per_cm=2), CANVAS, 50.0)


def test_oversized_image_refused_from_its_header():
    with pytest.raises(PixelBudgetError, match="refused before decoding"):
        check_pixel_budget(bomb_png(), "bomb.png", 40_000_000)
    with pytest.raises(PixelBudgetError, match="500x400 pixels exceeds the limit of 1000"):
        check_pixel_budget(encode_png(np.zeros((400, 500), np.uint8)), "big.png", 1000)
    with pytest.raises(ImageError, match="cannot decode"):
        check_pixel_budget(b"not an image", "junk.png", 1000)


def test_named_users_resolve_in_constant_time_compare():
    users = Users([("alice", "alice-token-0001"), ("bob", "bob-token-00002")])
    assert users.resolve("Bearer alice-token-0001") == "alice"
    assert users.resolve("bearer bob-token-00002") == "bob"
    assert users.resolve("Bearer alice-token-0002") is None
    assert users.resolve("Basic alice-token-0001") is None and users.resolve(None) is None
    assert users.resolve("Bearer shared-token-123", "shared-token-123") == "api"
    assert not Users([]).enabled() and Users([]).enabled("shared-token-123")


def test_heatmap_colours_agreement_and_greys_hidden_cells():
    ground = np.zeros(CANVAS, np.uint8)
    rgb = heatmap_rgb([[0.9, -0.9], [0.0, 0.5]], [[True, True], [True, False]], ground)
    agree, disagree, hidden = rgb[10, 10], rgb[10, 100], rgb[50, 100]
    assert agree[0] > agree[2] and disagree[2] > disagree[0]
    assert hidden[0] == hidden[1] == hidden[2]
    png = heatmap_png([[0.9, -0.9], [0.0, 0.5]], [[True, True], [True, False]], ground)
    assert decode_image(png, "heat map", "RGB").shape == (CANVAS[0] * 2, CANVAS[1] * 2, 3)


def answer(n: int = 5) -> dict:
    """A ranking as the gateway returns it (the records store it verbatim)."""
    return {"index_version": "v1", "model_uri": "/models/enc", "index_px_per_cm": 10.0,
            "visible_cells": [[True, False], [True, True]],
            "results": [{"rank": i + 1, "model_id": f"M{i:03d}", "instance_id": f"I{i:03d}",
                         "score": 1.0 - i / 10, "pattern_id": "P", "descriptors": ["D01"],
                         "attributes": {}, "cell_scores": [[0.5, 0.0], [-0.2, 0.9]]}
                        for i in range(n)]}


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request, tmp_path):
    if request.param == "sqlite":
        return CaseRecords(f"sqlite:///{tmp_path}/cases.sqlite")
    url = request.getfixturevalue("postgres")
    store = CaseRecords(url)
    with store.engine.begin() as connection:  # each test starts from an empty schema
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    return CaseRecords(url)


def test_case_records_report_and_audit_chain(records):
    records.create_case("alice", "2026-0412", "Burglary, Elm St.")
    with pytest.raises(CaseError, match="already exists"):
        records.create_case("alice", "2026-0412", "again")
    upload = records.add_upload("alice", "2026-0412", photo(), "scene.png", 10_000)
    colour_tiff = io.BytesIO()
    Image.fromarray(np.dstack([decode_image(photo(), "p")] * 3)).save(colour_tiff, "TIFF")
    tiff = records.add_upload("alice", "2026-0412", colour_tiff.getvalue(), "scene.tif", 10_000)
    assert tiff["format"] == "TIFF" and (tiff["width"], tiff["height"]) == (80, 40)
    assert np.array_equal(prepare(colour_tiff.getvalue(), Preparation(px_per_cm=10), CANVAS, 10),
                          prepare(photo(), Preparation(px_per_cm=10), CANVAS, 10))
    with pytest.raises(PixelBudgetError):
        records.add_upload("alice", "2026-0412", encode_png(np.zeros((200, 200), np.uint8)),
                           "big.png", 10_000)
    with pytest.raises(CaseNotFound, match="unknown case"):
        records.add_upload("alice", "nope", photo(), "scene.png", 10_000)
    params = Preparation(px_per_cm=10, rotate_deg=3)
    prepared = prepare(photo(), params, CANVAS, 10.0)
    mask = encode_png(np.full(CANVAS, 255, np.uint8))
    query_id = records.record_query("alice", "2026-0412", upload["sha256"], params, mask,
                                    encode_png(prepared), {"descriptors": ["D01"]}, 5, answer())
    records.set_decision("alice", "2026-0412", query_id, "M001", "possible match", "toe agrees")
    records.set_decision("bob", "2026-0412", query_id, "M003", "excluded", "heel differs")
    records.set_decision("bob", "2026-0412", query_id, "M001", "inconclusive", "second look")
    with pytest.raises(CaseError, match="not in the ranking"):
        records.set_decision("bob", "2026-0412", query_id, "M999", "excluded", "")
    with pytest.raises(CaseError, match="use one of"):
        records.set_decision("bob", "2026-0412", query_id, "M001", "maybe", "")
    case = records.case_file("2026-0412")
    decisions = case["queries"][0]["decisions"]
    assert decisions["M001"]["decision"] == "inconclusive" and decisions["M001"]["by"] == "bob"
    assert decisions["M003"]["note"] == "heel differs"
    images = records.query_images("2026-0412")
    pdf = case_pdf(case, images)
    text_of_pdf = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert upload["sha256"] in text_of_pdf.replace("\n", "")
    assert "heel differs" in text_of_pdf and "inconclusive" in text_of_pdf
    page = case_html(case, images)
    assert upload["sha256"] in page and "rotate: 3°" in page and "heat map M003" in page
    records.record_export("alice", "2026-0412", "pdf", pdf)

    with records.sessions() as session:
        report = audit.verify(session)
        assert report.ok and report.entries == 8, report.reason  # 2 refused writes left none
        users = [row[0] for row in session.execute(
            text('SELECT "user" FROM audit_log ORDER BY id'))]
        assert users == ["alice"] * 5 + ["bob"] * 2 + ["alice"]
    # The database refuses to change the audit log ...
    with pytest.raises(Exception, match="append-only"):
        with records.engine.begin() as connection:
            connection.execute(text("UPDATE audit_log SET details = '{}' WHERE id = 5"))
    # ... and someone who bypasses that (drops the guard) is caught by the chain.
    drop = ("DROP TRIGGER audit_log_append_only ON audit_log"
            if records.engine.dialect.name == "postgresql" else
            "DROP TRIGGER audit_log_no_update")
    with records.engine.begin() as connection:
        connection.execute(text(drop))
        connection.execute(text("UPDATE audit_log SET details = "
                                "replace(details, 'heel differs', 'heel agrees') WHERE id = 6"))
    with records.sessions() as session:
        report = audit.verify(session)
    assert report.broken_id == 6 and "altered" in report.reason
    cli = subprocess.run([sys.executable, "-m", "jobs.audit", "verify", "--db",
                          str(records.engine.url.render_as_string(hide_password=False))],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "BROKEN at entry 6" in cli.stdout, cli.stdout + cli.stderr
