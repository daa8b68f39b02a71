"""The examiner workbench: a static page at `/` and the case API under `/v1/cases`, mounted on
the Serve gateway's FastAPI app."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from serve.workbench.router import router
from shoematch.errors import CaseError, CaseNotFound, ImageError, PixelBudgetError

STATIC = Path(__file__).with_name("static")
PUBLIC_PATHS = {"/"}
PUBLIC_PREFIXES = ("/static/",)  # the page's own files; every API call still needs a token


async def _case_error(_request: Request, exc: CaseError) -> JSONResponse:
    return JSONResponse({"error": str(exc)},
                        status_code=404 if isinstance(exc, CaseNotFound) else 400)


async def _image_error(_request: Request, exc: ImageError) -> JSONResponse:
    return JSONResponse({"error": str(exc)},
                        status_code=413 if isinstance(exc, PixelBudgetError) else 400)


def mount_workbench(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(CaseError, _case_error)
    app.add_exception_handler(ImageError, _image_error)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
