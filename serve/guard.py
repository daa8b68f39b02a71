"""The ingress's first line: bearer-token auth and the upload size limit, before any body is read;
and admission control for the expensive stage (encoding and search), after a request validated.

A plain ASGI middleware rather than FastAPI's `@middleware("http")`, because the limit has to
count the bytes of a body as they arrive: a chunked request (no Content-Length) is answered 413
the moment it passes the limit and the rest is never read, authenticated or not.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import Overloaded, error_response
from serve.settings import ServeSettings
from serve.workbench import PUBLIC_PATHS, PUBLIC_PREFIXES
from shoematch.cases.users import Users

OPEN_PATHS = frozenset({"/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc",
                        "/openapi.json", *PUBLIC_PATHS})
LOCAL_USER = "local"  # who a request is when no token is configured


def caller(settings: ServeSettings, users: Users, path: str, header: str | None
           ) -> str | None:
    """Who sends the request (named user, `api` for the shared token, `local` when no token
    is configured or the path is open), or None when the token is missing or wrong. Bearer
    scheme in any case; every token compared in constant time (`Users.resolve`)."""
    shared = os.environ.get(settings.token_env)
    if not users.enabled(shared) or path in OPEN_PATHS or path.startswith(PUBLIC_PREFIXES):
        return LOCAL_USER
    return users.resolve(header, shared)


def too_large(limit: int) -> JSONResponse:
    return error_response(413, f"request body exceeds the upload limit of {limit} bytes")


class Admission:
    """At most `limit` requests of one gateway replica in the expensive stage at once.

    Work past the limit would only queue in front of the encoder and the shards, so every
    admitted request would get slower and nothing would finish sooner: a request that finds no
    slot within `wait_s` is refused at once (503 + Retry-After) and the client comes back later.
    An admitted request that is not done within `deadline_s` is refused the same way, so no
    request hangs. Validation and decoding happen before admission: bad input gets its 4xx
    however busy the service is."""

    def __init__(self, limit: int, wait_s: float, deadline_s: float, retry_after_s: float
                 ) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.deadline_s = deadline_s
        self.retry_after_s = retry_after_s
        self.slots = asyncio.Semaphore(limit)
        self.admitted = 0
        self.refused = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait_s):
                await self.slots.acquire()
        except TimeoutError:
            self.refused += 1
            raise Overloaded(f"over capacity: {self.limit} requests are being served and no "
                             f"slot freed within {self.wait_s:g} s; retry later",
                             self.retry_after_s) from None
        self.admitted += 1
        try:
            async with asyncio.timeout(self.deadline_s):
                yield
        except TimeoutError:
            raise Overloaded(f"not answered within the {self.deadline_s:g} s request deadline; "
                             "retry later", self.retry_after_s) from None
        finally:
            self.slots.release()


class RequestGuard:
    """Auth and the upload limit of one app, with its gateway's settings and users."""

    def __init__(self, app: ASGIApp, settings: ServeSettings, users: Users) -> None:
        self.app = app
        self.settings = settings
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        headers = Headers(scope=scope)
        limit = settings.max_upload_bytes
        user = caller(settings, self.users, scope["path"], headers.get("authorization"))
        if user is None:
            await error_response(401, "missing or wrong bearer token",
                                 {"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user  # `request.state.user`: the audit log's
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await too_large(limit)(scope, receive, send)
            return
        received, refused = 0, False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # answer now; the app sees a client that went away
                refused = True
                await too_large(limit)(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:  # after a 413 the app's disconnect error is expected
                raise
