"""The Ray Serve endpoint as users run it: deployed with `ray job submit -- python -m
jobs.serve_index`, queried over HTTP (httpx) with bearer auth; rankings equal the in-process
search; bad requests get 4xx with the reason; a reload under load drops nothing; a killed shard
replica never yields an incomplete ranking."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from cluster.processes import free_port
from shoematch.crisp.runtime import DEFAULT_RUNTIME, prepare_encoder
from shoematch.crisp.store import load_encoder
from shoematch.data.dataset import open_dataset
from shoematch.data.images import decode_image, encode_png
from shoematch.index.encoding import query_cells
from shoematch.index.reader import SearchIndex
from tests.conftest import NODE_TOKEN, NODE_TOKEN_ENV, REPO
from tests.ray_jobs import kill_shard_replica, only_whole_rankings, submit, wait_job

TOKEN = NODE_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# In the deploying job's environment only: must not reach the replicas or the Serve config.
CANARY_SECRET = "canary-secret-must-not-travel"


def reindex(model: str, refdb: str, out: str, shards: int) -> None:
    result = subprocess.run([sys.executable, "-m", "jobs.reindex", "--model", model, "--refdb",
                             refdb, "--out", out, "--shards", str(shards), "--local"],
                            cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def service(tiny_refs, random_encoder, tmp_path_factory, ray_head):
    """An index with 3 shards served by 2 shard slots; yields (url, index root)."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    root = str(tmp_path_factory.mktemp("served") / "index")
    reindex(random_encoder, f"{tiny_refs}/references", root, 3)
    port = free_port()
    client = JobSubmissionClient(ray_head.url)
    env = {"AWS_SECRET_ACCESS_KEY": CANARY_SECRET}
    job = submit(client, "jobs.serve_index", ["--index", root, "--slots", "2", "--port",
                                              str(port), "--set", "max_upload_bytes=200000",
                                              "shard_timeout_s=45", f"token_env={NODE_TOKEN_ENV}"],
                 env)
    try:
        status = wait_job(client, job, 300)
        assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)[-4000:]
        yield f"http://127.0.0.1:{port}", root
    finally:
        done = submit(client, "jobs.serve_index", ["--shutdown"])
        wait_job(client, done, 120)


@pytest.fixture(scope="module")
def queries(tiny_refs) -> list[dict]:
    return list(open_dataset(f"{tiny_refs}/queries").iter_records())


def in_process(root: str, model: str, record: dict, k: int, use_mask: bool = True,
               filters=None) -> list[str]:
    index = SearchIndex.load(root)
    image = decode_image(record["print"], "print")
    mask = decode_image(record["mask"], "mask") > 127 if use_mask else image > 32
    encoder = prepare_encoder(load_encoder(model).model, DEFAULT_RUNTIME)  # as served
    cells, _ = query_cells(encoder, image[None], mask[None])
    return [m.model for m in index.search(cells, k, index.parse_filters(filters))[0]]


def post(url: str, record: dict, *, mask: bool = True, headers=AUTH, **data) -> httpx.Response:
    files = {"print": ("print.png", record["print"], "image/png")}
    if mask:
        files["mask"] = ("mask.png", record["mask"], "image/png")
    return httpx.post(f"{url}/v1/search", files=files, data=data, headers=headers, timeout=90)


def test_http_rankings_equal_in_process_search(service, queries, random_encoder):
    url, root = service
    for record in queries[:4]:
        response = post(url, record, k="10")
        assert response.status_code == 200, response.text
        body = response.json()
        ranked = [r["model_id"] for r in body["results"]]
        assert ranked == in_process(root, random_encoder, record, 10)
        first = body["results"][0]
        assert {"score", "instance_id", "pattern_id", "descriptors", "attributes",
                "cell_scores"} <= set(first)
        assert np.asarray(first["cell_scores"]).shape == (2, 4)
        assert body["index_version"] and body["timings_ms"]["total"] > 0
    # Without a mask the print's ink is the visible region.
    unmasked = post(url, queries[0], mask=False, k="5")
    assert [r["model_id"] for r in unmasked.json()["results"]] == \
        in_process(root, random_encoder, queries[0], 5, use_mask=False)


def test_filters_over_http(service, queries, random_encoder):
    url, root = service
    info = httpx.get(f"{url}/v1/index", headers=AUTH, timeout=30).json()
    name, values = next(iter(info["attribute_values"].items()))
    filters = json.dumps({"attributes": {name: values[0]}})
    body = post(url, queries[0], k="50", filters=filters).json()
    assert body["results"] and all(r["attributes"][name] == values[0] for r in body["results"])
    assert [r["model_id"] for r in body["results"]] == in_process(
        root, random_encoder, queries[0], 50, filters=filters)
    everything = json.dumps({"descriptors": ["D01", "D02", "D03", "D04", "D05", "D06", "D07",
                                             "D08", "D09", "D10", "D11", "D12", "D13"]})
    empty = post(url, queries[0], filters=everything)
    assert empty.status_code == 200 and empty.json()["results"] == []


def test_bad_requests_get_4xx_with_the_reason(service, queries):
    url, _ = service
    record = queries[0]
    blank = encode_png(np.zeros((64, 128), np.uint8))
    small = encode_png(np.full((32, 64), 255, np.uint8))
    cases = [
        ({"print": ("p.png", b"not an image")}, {}, 400, "cannot decode"),
        ({"print": ("p.png", record["print"]), "mask": ("m.png", blank)}, {}, 400, "empty"),
        ({"print": ("p.png", record["print"]), "mask": ("m.png", small)}, {}, 400,
         "but the print is"),
        ({"print": ("p.png", small)}, {}, 400, "canvas"),
        ({"print": ("p.png", record["print"])}, {"k": "0"}, 400, "k must be"),
        ({"print": ("p.png", record["print"])}, {"filters": '{"colour": 1}'}, 400, "colour"),
        ({"print": ("p.png", record["print"])}, {"filters": '{"descriptors": ["D99"]}'}, 400,
         "D99"),
        ({"print": ("p.png", b"\0" * 300_000)}, {}, 413, "exceeds"),
    ]
    for files, data, status, reason in cases:
        response = httpx.post(f"{url}/v1/search", files=files, data=data, headers=AUTH,
                              timeout=60)
        assert response.status_code == status, (reason, response.text)
        assert reason in response.json()["error"]
    unauthorised = post(url, record, headers={})
    assert unauthorised.status_code == 401
    assert post(url, record, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert httpx.get(f"{url}/v1/health", timeout=30).json()["status"] == "ok"


def test_chunked_body_is_cut_off_through_the_proxy(service):
    url, _ = service

    def endless():  # a well-formed upload of "print" that would go on for 64 MB
        yield (b'--xyz\r\nContent-Disposition: form-data; name="print"; filename="p.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(64):
            yield bytes(1_000_000)

    for headers in (AUTH, {}):
        response = httpx.post(f"{url}/v1/search", content=endless(), timeout=60, headers={
            **headers, "Content-Type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == (413 if headers else 401), response.text
        assert "content-length" not in response.request.headers


def test_deployed_config_holds_no_secret(service, ray_head):
    from cluster.local import serve_urls

    details = httpx.get(f"{ray_head.url}/api/serve/applications/", timeout=30)
    assert details.status_code == 200 and "IndexShard0" in details.text
    assert TOKEN not in details.text and CANARY_SECRET not in details.text
    url, _ = service  # what `python -m cluster status` shows, from the same API
    assert serve_urls(ray_head.url) == [f"shoematch: {url}/ (RUNNING)"]


def test_reload_under_load_drops_nothing(service, queries, random_encoder, tiny_refs):
    url, root = service
    before = httpx.get(f"{url}/v1/index", headers=AUTH, timeout=30).json()["index_version"]
    reindex(random_encoder, f"{tiny_refs}/references", root, 2)  # a new version, new layout
    failures, versions, stop = [], set(), threading.Event()

    def load() -> None:
        for i in range(200):  # bounded in count and time
            if stop.is_set():
                return
            response = post(url, queries[i % len(queries)], k="5")
            if response.status_code != 200:
                failures.append(response.text)
            else:
                versions.add(response.json()["index_version"])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        reloaded = httpx.post(f"{url}/v1/index/reload", headers=AUTH, timeout=120).json()
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert reloaded["changed"] and reloaded["previous_version"] == before
    assert not failures, failures[:3]
    assert reloaded["index_version"] in versions
    after = post(url, queries[1], k="10").json()
    assert after["index_version"] == reloaded["index_version"]
    assert [r["model_id"] for r in after["results"]] == in_process(root, random_encoder,
                                                                   queries[1], 10)


def test_killed_shard_replica_never_returns_a_partial_ranking(service, queries, random_encoder,
                                                              ray_head):
    url, root = service
    expected = {i: in_process(root, random_encoder, queries[i], 10) for i in range(3)}
    kill_shard_replica(ray_head.url)
    only_whole_rankings(lambda i: post(url, queries[i], k="10"), expected, 30)
