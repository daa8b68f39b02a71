"""The HTTP API with every deployment's class running in this process, without Ray.

The same classes and code paths as under Serve (the app factory, guard, routes, batched
encoder, shard search, exact merge); only the deployment handles are direct calls. For driving
the API through ASGI in tests (hostile input, the OpenAPI contract) where a cluster would cost
minutes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from serve.api import build_api
from serve.app import deployment_of
from serve.encoder import QueryEncoder
from serve.gateway import Gateway
from serve.labels import LabelModels
from serve.settings import ServeSettings
from serve.shard import IndexShard


def _in_process(decorated: object, *args: Any) -> Any:
    """An instance of a deployment's own class, built in this process."""
    cls = deployment_of(decorated).func_or_class
    assert callable(cls), cls
    return cls(*args)


class _Method:
    def __init__(self, method: Any) -> None:
        self.method = method

    def remote(self, *args: Any) -> Any:
        return self.method(*args)  # a coroutine, awaited as a DeploymentResponse would be


class _Encoder:
    """The encoder with batches of one (`serve.batch` needs a replica to gather them)."""

    def __init__(self, settings: dict) -> None:
        self.encoder = _in_process(QueryEncoder, settings["encoder_threads"], 1, 0.0,
                                   settings["encoder_runtime"])

    async def encode(self, request: tuple) -> Any:
        return (await self.encoder.encode_batch([request]))[0]


class LocalHandle:
    """`handle.method.remote(...)` on an instance in this process."""

    def __init__(self, instance: object) -> None:
        self.instance = instance

    def __getattr__(self, name: str) -> _Method:
        return _Method(getattr(self.instance, name))


def local_api(settings: dict) -> tuple[FastAPI, Gateway]:
    """The FastAPI app, served by a Gateway built here (one encoder, `slots` shards)."""
    body = ServeSettings.model_validate(settings).model_dump()
    gateway = Gateway(LocalHandle(_Encoder(body)),
                      [LocalHandle(_in_process(IndexShard, body, slot))
                       for slot in range(body["slots"])],
                      LocalHandle(_in_process(LabelModels)), body)
    return build_api(gateway), gateway
