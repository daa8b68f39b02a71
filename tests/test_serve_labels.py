"""Label models in the system: re-indexing fills descriptors and attributes of unlabelled
references (given labels win, the index records which is which); over HTTP a filtered search
returns only matching models, predictions come back for uploaded images, a sole photo is matched
against catalogue photos, and unknown codes or attribute names get a 4xx naming them."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest

from cluster.processes import free_port
from shoematch.attributes.model import AttributeNetConfig
from shoematch.attributes.predict import build_model, save_attribute_model
from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.index.layout import read_manifest
from shoematch.index.reader import SearchIndex
from tests.conftest import REPO
from tests.label_models import random_descriptor_model
from tests.ray_jobs import submit, wait_job


@pytest.fixture(scope="module")
def labelled_index(tiny_refs, random_encoder, tmp_path_factory):
    """A refdb whose odd records lost their labels, indexed with (random) label models."""

    work = tmp_path_factory.mktemp("labels")
    source = open_dataset(f"{tiny_refs}/references")
    records = list(source.iter_records())
    vocabulary: dict[str, set[str]] = {}
    for record in records:
        for name, value in (record["attributes"] or {}).items():
            vocabulary.setdefault(name, set()).add(value)
    for i, record in enumerate(records):
        if i % 2:
            record["descriptors"], record["attributes"] = [], {}
    refdb = str(work / "refs")
    with DatasetWriter(refdb, "references", source.canvas, "test") as writer:
        writer.add(records)
    descriptor = random_descriptor_model(str(work / "descriptor"))  # seeds torch (0)
    attribute = str(work / "attribute")
    vocab = {name: sorted(values) for name, values in vocabulary.items()}
    net_config = AttributeNetConfig(arch="resnet18", input_height=64, input_width=128,
                                    fc_dim=32)
    save_attribute_model(attribute, build_model(net_config, vocab), net_config, vocab)
    root = str(work / "index")
    result = subprocess.run(
        [sys.executable, "-m", "jobs.reindex", "--model", random_encoder, "--refdb", refdb,
         "--out", root, "--shards", "2", "--local", "--descriptor-model", descriptor,
         "--attribute-model", attribute], cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    return root, records


def test_reindex_fills_missing_labels_and_says_so(labelled_index):
    root, records = labelled_index
    manifest = read_manifest(root)
    half = len(records) // 2
    assert manifest.label_sources["descriptors"].get("label") == len(records) - half
    assert manifest.label_sources["attributes"] == {"label": len(records) - half,
                                                    "predicted": half}
    assert manifest.photo_dim > 0 and manifest.descriptor_model and manifest.attribute_model
    index = SearchIndex.load(root)
    by_id = {r["instance_id"]: r for r in records}
    for shard in index.shards:
        columns = shard.metadata.select(["instance_id", "descriptor_source", "descriptors"])
        for iid, source, codes in zip(*(c.to_pylist() for c in columns.columns), strict=True):
            if by_id[iid]["descriptors"]:  # given labels win
                assert source == "label" and list(codes) == list(by_id[iid]["descriptors"])
            else:
                assert source in ("predicted", "none")


@pytest.fixture(scope="module")
def service(labelled_index, ray_head):
    from ray.job_submission import JobStatus, JobSubmissionClient

    root, _ = labelled_index
    port = free_port()
    client = JobSubmissionClient(ray_head.url)
    job = submit(client, "jobs.serve_index", ["--index", root, "--slots", "2", "--port",
                                              str(port)])
    try:
        status = wait_job(client, job, 300)
        assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)[-4000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        wait_job(client, submit(client, "jobs.serve_index", ["--shutdown"]), 120)


def test_predictions_and_photo_search_over_http(service, labelled_index):
    url = service
    _, records = labelled_index
    record = records[0]
    descriptors = httpx.post(f"{url}/v1/descriptors", files={"print": record["print"]},
                             timeout=120)
    assert descriptors.status_code == 200, descriptors.text
    body = descriptors.json()
    assert set(body["scores"]) == set(DESCRIPTOR_CODES)
    assert all(0 <= s <= 1 for s in body["scores"].values())
    attributes = httpx.post(f"{url}/v1/attributes", files={"photo": record["street_photo"]},
                            timeout=120)
    assert attributes.status_code == 200, attributes.text
    assert set(attributes.json()["attributes"]) == set(record["attributes"] or records[2]
                                                        ["attributes"])
    photo = httpx.post(f"{url}/v1/search/photo", files={"photo": record["street_photo"]},
                       data={"k": "5"}, timeout=120)
    assert photo.status_code == 200, photo.text
    assert len(photo.json()["results"]) == 5
    bad = httpx.post(f"{url}/v1/attributes", files={"photo": b"not an image"}, timeout=60)
    assert bad.status_code == 400 and "cannot decode" in bad.json()["error"]


def test_filtered_search_over_http(service, labelled_index):
    url = service
    _, records = labelled_index
    query = records[1]
    info = httpx.get(f"{url}/v1/index", timeout=30).json()
    name, values = next(iter(info["attribute_values"].items()))
    files = {"print": query["print"]}
    filtered = httpx.post(f"{url}/v1/search", files=files, timeout=120, data={
        "k": "20", "filters": json.dumps({"attributes": {name: values[0]}})})
    assert filtered.status_code == 200, filtered.text
    results = filtered.json()["results"]
    assert results and all(r["attributes"][name] == values[0] for r in results)
    code = records[0]["descriptors"][0]
    by_code = httpx.post(f"{url}/v1/search", files=files, timeout=120, data={
        "filters": json.dumps({"descriptors": [code]})}).json()["results"]
    assert by_code and all(code in r["descriptors"] for r in by_code)
    nothing = httpx.post(f"{url}/v1/search", files=files, timeout=120, data={
        "filters": json.dumps({"descriptors": list(DESCRIPTOR_CODES)})})
    assert nothing.status_code == 200 and nothing.json()["results"] == []
    for filters, named in (({"descriptors": ["D42"]}, "D42"),
                           ({"attributes": {"sparkle": "yes"}}, "sparkle")):
        response = httpx.post(f"{url}/v1/search", files=files, timeout=60,
                              data={"filters": json.dumps(filters)})
        assert response.status_code == 400 and named in response.json()["error"]
    assert np.isfinite(results[0]["score"])
