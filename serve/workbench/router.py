"""The case API behind the workbench page. Every search is made from the original upload plus
the recorded preparation, mask and filters, so `…/rerun` reproduces it exactly."""

from __future__ import annotations

import asyncio
import io
import json
from functools import partial
from typing import Annotated

import numpy as np
from fastapi import APIRouter, FastAPI, File, Form, Path, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field

from serve.deps import CasesDep, GatewayDep, SettingsDep, UserDep, WorkbenchDep
from serve.gateway import Gateway
from serve.schemas import errors
from serve.settings import ServeSettings
from serve.uploads import decode_mask
from serve.workbench import STATIC
from serve.workbench.state import WorkbenchState
from shoematch.cases.heatmap import heatmap_png
from shoematch.cases.placement_search import best_try, placement_tries
from shoematch.cases.preparation import (
    MAX_PX_PER_CM,
    MIN_PX_PER_CM,
    Preparation,
    parse_preparation,
    prepare,
)
from shoematch.cases.records import DECISIONS
from shoematch.cases.report import case_html, case_pdf
from shoematch.data.images import check_pixel_budget, decode_image, encode_png
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.errors import CaseNotFound, QueryError

# Every case route may answer these (the search path's and the case records' errors).
router = APIRouter(prefix="/v1", responses=errors(400, 401, 404, 409, 413, 503))
PNG = "image/png"
# Query ids are database row ids: a larger number cannot name one (and overflows SQL integers).
QueryId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class NewCase(BaseModel):
    id: str = Field(description="the case reference, e.g. 2026-0412")
    title: str = ""


class DecisionBody(BaseModel):
    decision: str = Field(description=" | ".join(DECISIONS))
    note: str = Field("", max_length=4000)


def mount_workbench(app: FastAPI) -> None:
    """The case API, the automatic preparation's proposal (`POST /v1/prepare`), the page at
    `/` and its static files, on the gateway's app."""
    from serve.workbench.proposal import router as proposal_router  # it imports this module

    app.include_router(router)
    app.include_router(proposal_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _read(upload: UploadFile | None, what: str, settings: ServeSettings) -> bytes:
    if upload is None:
        raise QueryError(f"{what} is missing")
    limit = settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise QueryError(f"{what} exceeds the upload limit of {limit} bytes")
    return data


@router.get("/workbench")
async def workbench(gateway: GatewayDep, state: WorkbenchDep, user: UserDep) -> dict:
    """What the page needs to start: who is signed in, the index, the limits."""
    manifest = gateway.slots.manifest()
    settings = gateway.settings
    return {"user": user, "index_version": manifest.version,
            "model_uri": settings.model or manifest.model_uri, "canvas": manifest.canvas,
            "grid": manifest.grid, "px_per_cm": await asyncio.to_thread(
                state.px_per_cm, manifest),
            "attribute_values": manifest.attribute_values,
            "descriptor_codes": list(DESCRIPTOR_CODES),
            "descriptor_model": bool(settings.descriptor_model or manifest.descriptor_model),
            "limits": {"max_upload_bytes": settings.max_upload_bytes,
                       "max_image_pixels": settings.max_image_pixels,
                       "px_per_cm": [MIN_PX_PER_CM, MAX_PX_PER_CM], "max_k": settings.max_k},
            "decisions": list(DECISIONS)}


@router.get("/cases")
async def list_cases(records: CasesDep) -> list[dict]:
    return await asyncio.to_thread(records.list_cases)


@router.post("/cases")
async def create_case(records: CasesDep, user: UserDep, body: NewCase) -> dict:
    return await asyncio.to_thread(records.create_case, user, body.id, body.title)


@router.get("/cases/{case_id}")
async def case_file(records: CasesDep, case_id: str) -> dict:
    return await asyncio.to_thread(records.case_file, case_id)


@router.post("/cases/{case_id}/uploads")
async def upload(records: CasesDep, user: UserDep, settings: SettingsDep, case_id: str,
                 image: Annotated[UploadFile | None, File()] = None) -> dict:
    """Store the original crime-scene image (JPEG/PNG/TIFF); refused unread when its header
    declares more than `max_image_pixels`."""
    data = await _read(image, "image", settings)
    name = image.filename if image is not None and image.filename else "image"
    return await asyncio.to_thread(records.add_upload, user, case_id, data, name,
                                   settings.max_image_pixels)


def _viewable(data: bytes, max_pixels: int) -> bytes:
    check_pixel_budget(data, "upload", max_pixels)
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"))
    return encode_png(rgb)


@router.get("/cases/{case_id}/uploads/{sha256}/view.png")
async def view_upload(records: CasesDep, settings: SettingsDep, case_id: str, sha256: str
                      ) -> Response:
    """The original as PNG (browsers cannot show TIFF); the stored bytes stay untouched."""
    data = await asyncio.to_thread(records.upload_bytes, case_id, sha256)
    png = await asyncio.to_thread(_viewable, data, settings.max_image_pixels)
    return Response(png, media_type=PNG, headers={"Cache-Control": "private, max-age=3600"})


@router.post("/cases/{case_id}/prepare")
async def prepare_preview(gateway: GatewayDep, state: WorkbenchDep, case_id: str,
                          upload_sha256: Annotated[str, Form()],
                          preparation: Annotated[str, Form()]) -> Response:
    """The prepared print on the canvas exactly as a search with these parameters sees it
    (centred when the server is to search the placement)."""
    manifest = gateway.slots.manifest()
    params = parse_preparation(preparation)
    original = await asyncio.to_thread(state.records.upload_bytes, case_id, upload_sha256)
    scale = await asyncio.to_thread(state.px_per_cm, manifest)
    canvas = (manifest.canvas["height"], manifest.canvas["width"])
    image = await asyncio.to_thread(prepare, original, params, canvas, scale)
    return Response(encode_png(image), media_type=PNG)


async def _searched(gateway: Gateway, workbench: WorkbenchState, case_id: str,
                    upload_sha256: str, params: Preparation, mask_png: bytes, k: int,
                    filters: str | dict | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Prepare the original, apply the mask and rank — the one path of a search and of its
    re-run. Returns the print searched, the mask as drawn and the answer (of several
    placements, the one `best_try` keeps)."""
    manifest = gateway.slots.manifest()
    original = await asyncio.to_thread(workbench.records.upload_bytes, case_id, upload_sha256)
    scale = await asyncio.to_thread(workbench.px_per_cm, manifest)
    canvas = (manifest.canvas["height"], manifest.canvas["width"])
    drawn, tries = await asyncio.to_thread(placement_tries, original, params,
                                           partial(decode_mask, mask_png), canvas, scale)
    answers = await asyncio.gather(*(gateway.rank(t.image, t.visible, k, filters)
                                     for t in tries))
    best, placement = best_try(tries, answers)
    answer = answers[best]
    answer["index_px_per_cm"] = scale
    answer["placement"] = placement
    return tries[best].image, drawn, answer


@router.post("/cases/{case_id}/queries")
async def search(gateway: GatewayDep, state: WorkbenchDep, user: UserDep, case_id: str,
                 upload_sha256: Annotated[str, Form()],
                 preparation: Annotated[str, Form()],
                 mask: Annotated[UploadFile | None, File()] = None,
                 k: Annotated[int, Form()] = 100,
                 filters: Annotated[str | None, Form()] = None) -> dict:
    """Prepare the original, search with the drawn mask and filters, record the query."""
    params = parse_preparation(preparation)
    mask_png = await _read(mask, "mask", gateway.settings)
    image, drawn, answer = await _searched(gateway, state, case_id, upload_sha256, params,
                                           mask_png, k, filters)
    query_id = await asyncio.to_thread(
        state.records.record_query, user, case_id, upload_sha256, params,
        encode_png(drawn.astype(np.uint8) * 255), encode_png(image), answer["filters"], k,
        answer)
    return {"query_id": query_id, **answer}


@router.post("/cases/{case_id}/queries/{query_id}/rerun")
async def rerun(gateway: GatewayDep, state: WorkbenchDep, user: UserDep, case_id: str,
                query_id: QueryId) -> dict:
    """Search again from the recorded original, parameters, mask and filters."""
    records = state.records
    query = await asyncio.to_thread(records.query, case_id, query_id)
    _, _, answer = await _searched(gateway, state, case_id, query.upload_sha256,
                                   parse_preparation(query.preparation), query.mask_png,
                                   query.k, json.loads(query.filters))
    check = await asyncio.to_thread(records.record_rerun, user, case_id, query_id,
                                    answer)
    return {"query_id": query_id, "recorded_index_version": query.index_version, **check,
            **answer}


@router.get("/cases/{case_id}/queries/{query_id}/{which}.png")
async def query_image(records: CasesDep, case_id: str, query_id: QueryId, which: str
                      ) -> Response:
    """The prepared print (`print.png`) or mask (`mask.png`) a query searched with."""
    if which not in ("print", "mask"):
        raise CaseNotFound(f"no image {which!r}: use print.png or mask.png")
    query = await asyncio.to_thread(records.query, case_id, query_id)
    return Response(query.print_png if which == "print" else query.mask_png, media_type=PNG)


@router.get("/cases/{case_id}/queries/{query_id}/heatmap/{model_id}.png")
async def heatmap(records: CasesDep, case_id: str, query_id: QueryId, model_id: str
                  ) -> Response:
    """Per-cell similarity of the query and the model's best instance, over the print."""
    query = await asyncio.to_thread(records.query, case_id, query_id)
    result = next((r for r in json.loads(query.results) if r["model_id"] == model_id), None)
    if result is None:
        raise CaseNotFound(f"model {model_id!r} is not in the ranking of query {query_id}")
    png = heatmap_png(result["cell_scores"], json.loads(query.visible_cells),
                      decode_image(query.print_png, "prepared print"))
    return Response(png, media_type=PNG)


@router.put("/cases/{case_id}/queries/{query_id}/decisions/{model_id}")
async def decide(records: CasesDep, user: UserDep, case_id: str, query_id: QueryId,
                 model_id: str, body: DecisionBody) -> dict:
    return await asyncio.to_thread(records.set_decision, user,
                                   case_id, query_id, model_id, body.decision, body.note)


@router.get("/cases/{case_id}/report.{kind}")
async def report(records: CasesDep, user: UserDep, case_id: str, kind: str) -> Response:
    """The case report as PDF or HTML; each export is itself an audit entry."""
    if kind not in ("pdf", "html"):
        raise CaseNotFound(f"no report format {kind!r}: use report.pdf or report.html")
    case = await asyncio.to_thread(records.case_file, case_id)
    images = await asyncio.to_thread(records.query_images, case_id)
    if kind == "pdf":
        body = await asyncio.to_thread(case_pdf, case, images)
        response: Response = Response(body, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="case-{case_id}.pdf"'})
    else:
        body = (await asyncio.to_thread(case_html, case, images)).encode()
        response = HTMLResponse(body, headers={
            "Content-Disposition": f'attachment; filename="case-{case_id}.html"'})
    await asyncio.to_thread(records.record_export, user, case_id, kind, body)
    return response


@router.get("/references/{instance_id}/{field}.png")
async def reference_image(gateway: GatewayDep, state: WorkbenchDep, instance_id: str,
                          field: str) -> Response:
    """A reference's print or depth map, to show a candidate beside the query."""
    if field not in ("print", "depth"):
        raise CaseNotFound(f"no reference image {field!r}: use print.png or depth.png")
    images = await asyncio.to_thread(state.reference_images, gateway.slots.manifest())
    if instance_id not in images.where:
        raise CaseNotFound(f"no reference {instance_id!r} in {images.dataset.uri}")
    png = await asyncio.to_thread(images.image, instance_id, field)
    if png is None:
        raise CaseNotFound(f"reference {instance_id} has no {field} image")
    return Response(png, media_type=PNG, headers={"Cache-Control": "private, max-age=3600"})
