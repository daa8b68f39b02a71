"""The ingress's first line: bearer-token auth and the upload size limit, before any body is read.

A plain ASGI middleware rather than FastAPI's `@middleware("http")`, because the limit has to
count the bytes of a body as they arrive: a chunked request (no Content-Length) is answered 413
the moment it passes the limit and the rest is never read, authenticated or not.
"""

from __future__ import annotations

import os

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    return JSONResponse({"error": f"request body exceeds the upload limit of {limit} bytes"},
                        status_code=413)


class RequestGuard:
    # The gateway's settings in this process, set by the Gateway on construction. A class
    # attribute, not `app.state`: Serve ships the app to the replica as a copy, while this
    # class (like the Gateway) is imported there, so both see the same one.
    settings: ServeSettings | None = None
    users: Users = Users([])

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
        user = caller(settings, RequestGuard.users, scope["path"], headers.get("authorization"))
        if user is None:
            await JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                               headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
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
