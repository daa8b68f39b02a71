"""Admission control (`serve.guard.Admission`), in process through ASGI: with every slot taken a
search is refused at once with 503, `Retry-After` and the API's error body, while bad input still
gets its 400; once a slot frees the same request is answered; a request past its deadline is
refused the same way instead of hanging."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from serve.guard import Admission, Overloaded
from serve.local import local_api
from shoematch.data.dataset import open_dataset

WAIT_S = 0.2


@pytest.fixture(scope="module")
def api(tiny_index):
    app, gateway = local_api({"index": tiny_index, "slots": 2, "max_inflight": 1,
                              "admission_wait_s": WAIT_S, "retry_after_s": 2.5,
                              "encoder_runtime": "eager"})
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    yield client, gateway, loop
    loop.run_until_complete(client.aclose())
    loop.close()


@pytest.fixture(scope="module")
def files(tiny_refs) -> dict:
    record = next(open_dataset(f"{tiny_refs}/queries").iter_records())
    return {"print": ("p.png", record["print"]), "mask": ("m.png", record["mask"])}


def test_over_capacity_is_503_with_retry_after_and_bad_input_still_400(api, files):
    client, gateway, loop = api

    async def while_full():
        async with gateway.admission.slot():  # the one slot is taken
            started = time.perf_counter()
            refused = await client.post("/v1/search", files=files, data={"k": "5"})
            waited = time.perf_counter() - started
            bad = await client.post("/v1/search", files=files, data={"k": "0"})
        answered = await client.post("/v1/search", files=files, data={"k": "5"})
        return refused, waited, bad, answered

    refused, waited, bad, answered = loop.run_until_complete(while_full())
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "3"  # whole seconds, rounded up
    assert refused.headers["content-type"] == "application/json"
    assert set(refused.json()) == {"error"} and "over capacity" in refused.json()["error"]
    assert WAIT_S <= waited < WAIT_S + 5  # refused after the wait, not queued
    assert bad.status_code == 400 and "k must be between" in bad.json()["error"]
    assert answered.status_code == 200, answered.text
    assert len(answered.json()["results"]) == 5
    assert answered.json()["timings_ms"]["admission"] < WAIT_S * 1e3
    assert gateway.admission.refused >= 1


def test_waiting_request_is_admitted_when_a_slot_frees(api, files):
    client, gateway, loop = api

    async def hold_briefly():
        async def holder():
            async with gateway.admission.slot():
                await asyncio.sleep(WAIT_S / 4)
        held = asyncio.create_task(holder())
        await asyncio.sleep(0)  # the holder takes the slot first
        response = await client.post("/v1/search", files=files, data={"k": "3"})
        await held
        return response

    response = loop.run_until_complete(hold_briefly())
    assert response.status_code == 200, response.text


def test_a_request_past_its_deadline_is_refused_not_left_hanging():
    admission = Admission(limit=2, wait_s=0.1, deadline_s=0.1, retry_after_s=1)

    async def slow():
        async with admission.slot():
            await asyncio.sleep(10)

    started = time.perf_counter()
    with pytest.raises(Overloaded, match="deadline") as caught:
        asyncio.run(slow())
    assert time.perf_counter() - started < 2
    assert caught.value.retry_after_s == 1
