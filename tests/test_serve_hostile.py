"""The HTTP API under hostile input, driven in process through ASGI (`serve.local`): every
class of bad request gets a clear 4xx at once, in one error shape, and the process that decodes
does not grow by more than 50 MB while refusing an image bomb or an endless chunked body."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import time
import zlib

import httpx
import pytest

from serve.local import local_api
from serve.settings import ServeSettings
from shoematch.data.dataset import open_dataset
from shoematch.data.images import MAX_IMAGE_PIXELS, decode_image
from shoematch.errors import ImageError, SearchIndexError
from shoematch.index.layout import POINTER, list_versions, read_current

TOKEN_ENV = "SHOEMATCH_HOSTILE_TEST_TOKEN"
TOKEN = "hostile-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1_000_000  # max_upload_bytes of the app under test (a 30000² bomb is 0.9 MB)
GROWTH_MB = 50


def png_header_bomb(width: int, height: int) -> bytes:
    """A valid, all-black grey PNG of width × height: kilobytes on the wire, width × height
    bytes once decoded. Compressed row by row, so building it costs no such memory here."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    packer, row = zlib.compressobj(9), bytes(width + 1)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def peak_growth_mb(run, *args, **kwargs):
    """(result, MB the peak resident memory rose above the start while `run` ran): the
    kernel's high-water mark is reset to the current size first."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    start = _status_kb("VmRSS")
    result = run(*args, **kwargs)
    return result, (_status_kb("VmHWM") - start) / 1024


@pytest.fixture(scope="module")
def api(tiny_index):
    """`call(method, path, **httpx kwargs)` → response, all on one event loop; `call.gateway`
    is the gateway instance behind the app."""
    app, gateway = local_api({"index": tiny_index, "slots": 2, "max_upload_bytes": LIMIT,
                     "token_env": TOKEN_ENV, "shard_timeout_s": 20})
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")

    def call(method: str, path: str, **kwargs) -> httpx.Response:
        return loop.run_until_complete(client.request(method, path, **kwargs))

    call.gateway, call.run = gateway, loop.run_until_complete
    try:
        yield call
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture(scope="module")
def record(tiny_refs) -> dict:
    return next(open_dataset(f"{tiny_refs}/queries").iter_records())


def search(call, files: dict, data: dict | None = None, headers=AUTH) -> httpx.Response:
    return call("POST", "/v1/search", files=files, data=data or {}, headers=headers)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    for fragment in fragments:
        assert fragment in body["error"], body
    assert " object at 0x" not in body["error"] and "<class" not in body["error"], body
    return body["error"]


def test_the_memory_gauge_sees_a_decoded_bomb():
    bomb = png_header_bomb(12_000, 12_000)
    decoded, grew = peak_growth_mb(decode_image, bomb, "bomb", max_pixels=12_000 ** 2)
    assert decoded.shape == (12_000, 12_000) and grew > 100, grew


def test_image_bombs_are_refused_from_the_header(api, record):
    for width, height in ((12_000, 12_000), (30_000, 30_000)):
        bomb = png_header_bomb(width, height)
        assert len(bomb) < LIMIT  # small enough to pass the upload limit
        with pytest.raises(ImageError, match="larger than|pixels; the limit"):
            decode_image(bomb, "bomb")
        started = time.monotonic()
        as_print, grew = peak_growth_mb(search, api, {"print": ("p.png", bomb)})
        assert time.monotonic() - started < 1.0
        assert_error(as_print, 400, "print: image is", f"{MAX_IMAGE_PIXELS:,} pixels")
        assert grew < GROWTH_MB, f"{width}x{height}: peak grew {grew:.0f} MB"
        as_mask = search(api, {"print": ("p.png", record["print"]), "mask": ("m.png", bomb)})
        assert_error(as_mask, 400, "mask: image is")
        as_photo, grew = peak_growth_mb(api, "POST", "/v1/attributes",
                                        files={"photo": ("s.png", bomb)}, headers=AUTH)
        assert_error(as_photo, 400, "photo: image is")
        assert grew < GROWTH_MB


@pytest.mark.parametrize("headers", [AUTH, {}], ids=["authenticated", "anonymous"])
def test_chunked_body_is_cut_off_at_the_limit(api, headers):
    sent = []

    async def endless():  # a well-formed upload of "print" that goes on for 160 MB
        yield (b'--xyz\r\nContent-Disposition: form-data; name="print"; filename="p.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(160):
            sent.append(1)
            yield bytes(1_000_000)

    response, grew = peak_growth_mb(api, "POST", "/v1/search", content=endless(), headers={
        **headers, "Content-Type": "multipart/form-data; boundary=xyz"})
    if headers:
        assert_error(response, 413, f"upload limit of {LIMIT} bytes")
    else:
        assert_error(response, 401, "bearer token")
    assert "content-length" not in response.request.headers
    assert len(sent) <= 2, f"{len(sent)} MB read, the limit being 1 MB"
    assert grew < GROWTH_MB, f"peak grew {grew:.0f} MB"


def test_declared_oversize_body_is_refused_unread(api, record):
    response = search(api, {"print": ("p.png", b"\0" * (LIMIT + 1))})
    assert_error(response, 413, f"upload limit of {LIMIT} bytes")


def test_deep_or_long_filters_are_bad_fields(api, record):
    files = {"print": ("p.png", record["print"])}
    nested = "[" * 1000 + "]" * 1000
    assert_error(search(api, files, {"filters": nested}), 400, "filters: nested deeper")
    assert_error(search(api, files, {"filters": '{"descriptors": [' + '"D01",' * 1000 + '"D02"]}'}),
                 400, "filters:", "characters")
    fine = search(api, files, {"filters": json.dumps({"descriptors": ["D01"]}), "k": "3"})
    assert fine.status_code == 200, fine.text


def test_malformed_version_ids_are_refused_and_the_old_version_keeps_serving(api, record,
                                                                             tiny_index):
    index_root = tiny_index
    serving = read_current(index_root)
    pointer = f"{index_root}/{POINTER}"
    saved = open(pointer).read()
    try:
        for bad in ("../../etc", "v1/../../x", 7, ""):
            with open(pointer, "w") as out:
                json.dump({"version": bad}, out)
            with pytest.raises(SearchIndexError, match="malformed index version id"):
                read_current(index_root)
            response = api("POST", "/v1/index/reload", headers=AUTH)
            assert_error(response, 503, "malformed index version id")
        with open(pointer, "w") as out:  # well formed, but no such version in storage
            json.dump({"version": "v20990101-000000-abcdef"}, out)
        assert_error(api("POST", "/v1/index/reload", headers=AUTH), 503, "not found")
        os.remove(pointer)
        os.mkdir(pointer)  # the store cannot read the pointer at all
        assert_error(api("POST", "/v1/index/reload", headers=AUTH), 503, POINTER)
        still = search(api, {"print": ("p.png", record["print"])}, {"k": "3"})
        assert still.status_code == 200 and still.json()["index_version"] == serving
    finally:
        if os.path.isdir(pointer):
            os.rmdir(pointer)
        with open(pointer, "w") as out:
            out.write(saved)
    shutil.copytree(f"{index_root}/versions/{serving}", f"{index_root}/versions/bad..id")
    try:
        assert list_versions(index_root) == [serving]
    finally:
        shutil.rmtree(f"{index_root}/versions/bad..id")


def test_one_error_shape_and_status_for_bad_fields(api, record):
    image = ("p.png", record["print"])
    cases = [
        ({}, {}, "print: required"),
        ({}, {"print": "text, not a file"}, "print: expected a file upload"),
        ({"print": ("p.png", b"not an image")}, {}, "print: cannot decode image (not a PNG"),
        ({"print": image}, {"k": ""}, "k: empty"),
        ({"print": image}, {"k": "ten"}, "k: expected an integer"),
        ({"print": image}, {"k": "0"}, "k must be between 1 and 1000"),
        ({"print": image}, {"k": "1001"}, "k must be between 1 and 1000"),
        ({"print": image}, {"filters": "{"}, "filters: not valid JSON"),
        ({"print": image}, {"filters": '{"attributes": {"colour": ["nosuchcolour"]}}'},
         "filters: unknown value(s) ['nosuchcolour'] of attribute 'colour'; known: ["),
    ]
    for files, data, message in cases:
        assert_error(search(api, files, data), 400, message)
    assert_error(api("POST", "/v1/search", content=b"{}", headers={
        **AUTH, "Content-Type": "application/json"}), 400, "print: required")
    assert_error(api("GET", "/v1/nowhere", headers=AUTH), 404)
    assert_error(api("GET", "/v1/search", headers=AUTH), 405)
    assert_error(api("POST", "/v1/search/photo", files={"photo": image}, headers=AUTH), 409,
                 "no catalogue-photo features")


def test_bearer_scheme_is_case_insensitive(api):
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = api("GET", "/v1/index", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200, (scheme, response.text)
    for header in ({}, {"Authorization": f"Basic {TOKEN}"},
                   {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):
        assert_error(api("GET", "/v1/index", headers=header), 401, "bearer token")
    assert api("GET", "/v1/health").status_code == 200


def test_one_k_limit_and_refusals_are_not_retried(api, tiny_index):
    with pytest.raises(Exception, match="max_k"):
        ServeSettings.model_validate({"index": tiny_index, "max_k": 5000})
    started = time.monotonic()
    with pytest.raises(SearchIndexError, match="malformed index version id"):
        api.run(api.gateway.slots.ask(0, "prepare", "../x"))
    assert time.monotonic() - started < 2.0  # not retried until shard_timeout_s (20 s)


def test_no_secret_is_forwarded_to_replicas(monkeypatch):
    from serve.app import _env

    secrets = {"AWS_SECRET_ACCESS_KEY": "s3-secret-value", "AWS_ACCESS_KEY_ID": "s3-key-id",
               "SHOEMATCH_API_TOKEN": "api-token-value"}
    for name, value in {**secrets, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(name, value)
    forwarded = json.dumps(_env())
    assert "http://127.0.0.1:9" in forwarded
    assert not any(value in forwarded for value in secrets.values()), forwarded
