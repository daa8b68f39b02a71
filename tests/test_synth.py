"""The synthetic generator: determinism, chunking independence, schema validity, exact labels,
pattern grouping and query semantics."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from shoematch.data.images import decode_image
from shoematch.data.schema import (
    DESCRIPTOR_CODES,
    QUERY_KIND,
    REFERENCE_KIND,
    Canvas,
    validate_records,
)
from shoematch.data.synth import (
    SynthSpec,
    generate_query_chunk,
    generate_reference_chunk,
    write_contact_sheet,
)
from shoematch.data.synth.degrade import query_plan
from shoematch.data.synth.patterns import make_model
from shoematch.data.synth.render import pose
from shoematch.data.synth.tread import render_tread
from shoematch.errors import ConfigError

SMALL = Canvas(64, 128)
SPEC = SynthSpec(models=6, instances=2, queries=10, seed=11)
WIDE = SynthSpec(models=60, instances=1, queries=40, seed=3, canvas=SMALL)


@pytest.fixture(scope="module")
def wide_refs() -> list[dict]:
    return generate_reference_chunk(WIDE, range(WIDE.models))


@pytest.fixture(scope="module")
def wide_queries() -> list[dict]:
    return generate_query_chunk(WIDE, range(WIDE.queries))


def test_same_seed_same_bytes_whatever_the_chunking():
    whole = generate_reference_chunk(SPEC, range(0, 4))
    assert whole == generate_reference_chunk(SPEC, range(0, 2)) + generate_reference_chunk(
        SPEC, range(2, 4))
    assert generate_query_chunk(SPEC, range(0, 6)) == generate_query_chunk(
        SPEC, range(0, 3)) + generate_query_chunk(SPEC, range(3, 6))
    other = generate_reference_chunk(SynthSpec(models=6, instances=2, queries=10, seed=12),
                                     range(0, 1))
    assert other[0]["depth"] != whole[0]["depth"]


def test_records_follow_the_schema_on_the_default_canvas():
    refs = generate_reference_chunk(SPEC, range(SPEC.models))
    queries = generate_query_chunk(SPEC, range(SPEC.queries))
    assert validate_records(REFERENCE_KIND, refs, SPEC.canvas) == SPEC.models * SPEC.instances
    assert validate_records(QUERY_KIND, queries, SPEC.canvas) == SPEC.queries
    record = refs[0]
    assert record["instance_id"] == "M00000-i00" and record["source"] == "synthetic"
    assert set(record["attributes"]) == {"brand", "category", "toe_shape", "heel_type", "colour"}
    depth = decode_image(record["depth"], "depth")
    mask = decode_image(record["mask"], "mask")
    printed = decode_image(record["print"], "print")
    assert depth.max() == 255 and (depth[mask == 0] == 0).all()
    assert set(np.unique(printed)) <= {0, 255} and 0 < (printed > 0).mean() < (mask > 0).mean()
    assert decode_image(record["street_photo"], "street", "RGB").shape == (*SPEC.canvas.shape, 3)
    assert queries[0]["query_id"] == "Q000000"


def test_every_descriptor_appears_and_patterns_share_labels(wide_refs):
    validate_records(REFERENCE_KIND, wide_refs, SMALL)
    seen_codes = {code for r in wide_refs for code in r["descriptors"]}
    assert seen_codes == set(DESCRIPTOR_CODES)
    by_pattern = defaultdict(set)
    for record in wide_refs:
        assert record["descriptors"] and record["descriptors"] == sorted(record["descriptors"])
        by_pattern[record["pattern_id"]].add(tuple(record["descriptors"]))
    assert all(len(labels) == 1 for labels in by_pattern.values())
    assert any(len({r["model_id"] for r in wide_refs if r["pattern_id"] == p}) > 1
               for p in by_pattern)
    splits = {r["split"] for r in wide_refs}
    assert splits == {"train", "test"}
    test_patterns = {r["pattern_id"] for r in wide_refs if r["split"] == "test"}
    assert 0.1 <= len(test_patterns) / len(by_pattern) <= 0.3


def test_queries_target_the_whole_pattern(wide_refs, wide_queries):
    validate_records(QUERY_KIND, wide_queries, SMALL)
    pattern_of = {r["model_id"]: r["pattern_id"] for r in wide_refs}
    split_of = {r["model_id"]: r["split"] for r in wide_refs}
    members = defaultdict(set)
    for model, pattern in pattern_of.items():
        members[pattern].add(model)
    val = round(WIDE.val_query_fraction * WIDE.queries)
    for index, query in enumerate(wide_queries):
        source = f"M{query_plan(WIDE, index).model:05d}"
        assert source in query["targets"]
        assert set(query["targets"]) == members[pattern_of[source]]
        assert query["seen"] == (split_of[source] == "train")
        assert query["split"] == ("val" if index < val else "test")
        assert query["category"] in {"blood", "dust", "soil"}
    assert {q["seen"] for q in wide_queries} == {True, False}


def test_query_masks_cover_the_visible_part_of_the_sole(wide_queries):
    partial = 0
    for index, query in enumerate(wide_queries):
        plan = query_plan(WIDE, index)
        assert plan.instance >= WIDE.instances  # a held-out instance
        model = make_model(WIDE, plan.model)
        sole = pose(render_tread(model, SMALL), SMALL, WIDE.seed, plan.model, plan.instance).sd > 0
        mask = decode_image(query["mask"], "mask") > 0
        assert mask.any()
        if plan.coverage == "full":
            assert mask.sum() >= sole.sum()
        else:
            partial += 1
            assert mask.sum() < 0.85 * sole.sum()
    assert partial > 0


def test_spec_rejects_bad_settings_and_out_of_range_chunks():
    with pytest.raises(ConfigError, match="models"):
        SynthSpec(models=0, instances=1, queries=0, seed=0)
    with pytest.raises(ConfigError, match="holdout_pattern_fraction"):
        SynthSpec(models=1, instances=1, queries=0, seed=0, holdout_pattern_fraction=2.0)
    with pytest.raises(ConfigError, match="models"):
        generate_reference_chunk(SPEC, range(5, 7))


def test_contact_sheet_is_a_png(tmp_path):
    path = tmp_path / "sheet.png"
    write_contact_sheet(SynthSpec(models=3, instances=1, queries=0, seed=1, canvas=SMALL),
                        str(path), models=5)
    image = decode_image(path.read_bytes(), "sheet", "RGB")
    assert image.shape[0] > 3 * SMALL.height and image.shape[1] > 6 * SMALL.width
