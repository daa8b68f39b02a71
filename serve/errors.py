"""Every error the HTTP API answers, in its one shape `{"error": "..."}`: the body, the status
of each error class, and the OpenAPI document stripped of FastAPI's 422 (bad fields are 400)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shoematch.errors import (
    CaseError,
    CaseNotFound,
    ImageError,
    IndexComponentMissing,
    PixelBudgetError,
    QueryError,
    SearchIndexError,
    ShoematchError,
    StorageError,
)


class ShardUnavailable(ShoematchError):
    """A shard slot did not answer: the ranking would be incomplete."""


class MissingCapability(ShoematchError):
    """The index (or the service) lacks what the route needs: not an outage, a 409."""


class Overloaded(ShoematchError):
    """The service is at capacity (or a request ran past its deadline): answered 503 with
    `Retry-After`, never queued without bound."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def retry_after(seconds: float) -> dict[str, str]:
    """The `Retry-After` header: whole seconds, at least 1 (RFC 9110 delay-seconds)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None
                   ) -> JSONResponse:
    """The one error body of the API."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# The status each library error answers; an error takes its nearest class's (by its MRO, as
# Starlette picks a handler), so `IndexComponentMissing` is a 409 though a `SearchIndexError`.
STATUS: dict[type[Exception], int] = {
    QueryError: 400, CaseError: 400, ImageError: 400,
    CaseNotFound: 404,
    MissingCapability: 409, IndexComponentMissing: 409,
    PixelBudgetError: 413,
    SearchIndexError: 503, StorageError: 503, ShardUnavailable: 503,
}


def _field(loc: tuple) -> str:
    return ".".join(str(part) for part in loc[1:]) or str(loc[0])


def _problem(error: dict) -> str:
    if error["type"] == "missing":
        return "required"
    if "UploadFile" in error["msg"]:
        return "expected a file upload"
    if error["type"].startswith("int_"):
        return "expected an integer"
    return re.sub(r"<[^>]*>", "a value", error["msg"])  # never a Python object's repr


def install_error_handlers(app: FastAPI, retry_after_s: float) -> None:
    """Answer every error in the one shape: the library's by `STATUS` (a 503 with
    `Retry-After`), overload with its own delay, FastAPI's field errors as 400 naming each
    field, and Starlette's HTTP errors (404 of an unknown path, 405) as they are."""

    async def library_error(_request: Request, exc: Exception) -> JSONResponse:
        status = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
        return error_response(status, str(exc),
                              retry_after(retry_after_s) if status == 503 else None)

    async def overloaded(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Overloaded)
        return error_response(503, str(exc), retry_after(exc.retry_after_s))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), exc.headers)

    async def bad_field(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, "; ".join(f"{_field(e['loc'])}: {_problem(e)}"
                                             for e in exc.errors()))

    for kind in STATUS:
        app.add_exception_handler(kind, library_error)
    app.add_exception_handler(Overloaded, overloaded)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_field)


def without_422(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 for every route with parameters; this API answers bad fields
    with 400 (documented per route), so the 422 and its schemas are dropped."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema
