"""The HTTP API with every deployment's class running in this process, without Ray.

The same classes and code paths as under Serve (guard, routes, batched encoder, shard search,
exact merge); only the deployment handles are direct calls. For driving the API through ASGI
in tests (hostile input, the OpenAPI contract) where a cluster would cost minutes.
"""

from __future__ import annotations

import inspect

from fastapi import FastAPI

from serve.encoder import QueryEncoder
from serve.gateway import Gateway, api
from serve.labels import LabelModels
from serve.settings import ServeSettings
from serve.shard import IndexShard


class _Method:
    def __init__(self, method) -> None:
        self.method = method

    def remote(self, *args):
        return self.method(*args)  # a coroutine, awaited as a DeploymentResponse would be


class _Encoder:
    """The encoder with batches of one (`serve.batch` needs a replica to gather them)."""

    def __init__(self, settings: dict) -> None:
        self.encoder = QueryEncoder.func_or_class(settings["encoder_threads"], 1, 0.0,
                                                  settings["encoder_runtime"])

    async def encode(self, request: tuple):
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
                      [LocalHandle(IndexShard.func_or_class(body, slot))
                       for slot in range(body["slots"])],
                      LocalHandle(LabelModels.func_or_class()), body)
    # `serve.ingress` gives every route's `self` a dependency that finds the replica's
    # instance; outside a replica it is this gateway.
    for member in vars(Gateway).values():
        own = inspect.signature(member).parameters.get("self") \
            if inspect.isfunction(member) else None
        if own is not None and own.default is not inspect.Parameter.empty:
            api.dependency_overrides[own.default.dependency] = lambda: gateway
    return api, gateway
