"""The ingress's first line: bearer-token auth and the upload size limit, before any body is read.

A plain ASGI middleware rather than FastAPI's `@middleware("http")`, because the limit has to
count the bytes of a body as they arrive: a chunked request (no Content-Length) is answered 413
the moment it passes the limit and the rest is never read, authenticated or not.
"""

from __future__ import annotations

import hmac
import os

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.settings import ServeSettings

OPEN_PATHS = frozenset({"/v1/health", "/docs", "/docs/oauth2-redirect", "/redoc",
                        "/openapi.json"})


def authorised(settings: ServeSettings, path: str, header: str | None) -> bool:
    """No token configured, an open path, or `Bearer <token>` (scheme in any case), compared
    in constant time."""
    token = os.environ.get(settings.token_env)
    if not token or path in OPEN_PATHS:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())


def too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": f"request body exceeds the upload limit of {limit} bytes"},
                        status_code=413)


class RequestGuard:
    # The gateway's settings in this process, set by the Gateway on construction. A class
    # attribute, not `app.state`: Serve ships the app to the replica as a copy, while this
    # class (like the Gateway) is imported there, so both see the same one.
    settings: ServeSettings | None = None

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = RequestGuard.settings
        if settings is None:
            raise RuntimeError("RequestGuard.settings is unset: no Gateway in this process")
        headers = Headers(scope=scope)
        limit = settings.max_upload_bytes
        if not authorised(settings, scope["path"], headers.get("authorization")):
            await JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                               headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
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
