"""The case API behind the workbench page. Every search is made from the original upload plus
the recorded preparation, mask and filters, so `…/rerun` reproduces it exactly."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from PIL import Image
from pydantic import BaseModel, Field

from serve.schemas import errors
from serve.uploads import decode_mask
from serve.workbench.state import WorkbenchState
from shoematch.cases.heatmap import heatmap_png
from shoematch.cases.preparation import (
    MAX_PX_PER_CM,
    MIN_PX_PER_CM,
    Preparation,
    parse_preparation,
    placement_candidates,
    prepare,
    shift_mask,
)
from shoematch.cases.records import DECISIONS
from shoematch.cases.report import case_html, case_pdf
from shoematch.data.images import check_pixel_budget, decode_image, encode_png
from shoematch.data.schema import DESCRIPTOR_CODES
from shoematch.errors import BlankPrintError, CaseNotFound, QueryError

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


class CurrentGateway:
    """The Gateway of this process, set on its construction. A class attribute, not
    `app.state`: Serve ships the app to the replica as a copy, while this class is imported
    there, so the routes and the Gateway see the same one."""

    gateway: Any = None


def _gateway(_request: Request) -> Any:
    if CurrentGateway.gateway is None:
        raise RuntimeError("no Gateway in this process")
    return CurrentGateway.gateway


def _state(request: Request) -> WorkbenchState:
    app = request.app
    if getattr(app.state, "workbench", None) is None:
        app.state.workbench = WorkbenchState(_gateway(request).settings.db_url)
    return app.state.workbench


def _user(request: Request) -> str:
    return request.state.user


async def _read(upload: UploadFile | None, what: str, request: Request) -> bytes:
    if upload is None:
        raise QueryError(f"{what} is missing")
    limit = _gateway(request).settings.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise QueryError(f"{what} exceeds the upload limit of {limit} bytes")
    return data




@router.get("/workbench")
async def workbench(request: Request) -> dict:
    """What the page needs to start: who is signed in, the index, the limits."""
    gateway = _gateway(request)
    manifest = gateway._manifest()
    settings = gateway.settings
    return {"user": _user(request), "index_version": manifest.version,
            "model_uri": settings.model or manifest.model_uri, "canvas": manifest.canvas,
            "grid": manifest.grid, "px_per_cm": await asyncio.to_thread(
                _state(request).px_per_cm, manifest),
            "attribute_values": manifest.attribute_values,
            "descriptor_codes": list(DESCRIPTOR_CODES),
            "descriptor_model": bool(settings.descriptor_model or manifest.descriptor_model),
            "limits": {"max_upload_bytes": settings.max_upload_bytes,
                       "max_image_pixels": settings.max_image_pixels,
                       "px_per_cm": [MIN_PX_PER_CM, MAX_PX_PER_CM], "max_k": settings.max_k},
            "decisions": list(DECISIONS)}


@router.get("/cases")
async def list_cases(request: Request) -> list[dict]:
    return await asyncio.to_thread(_state(request).records.list_cases)


@router.post("/cases")
async def create_case(request: Request, body: NewCase) -> dict:
    return await asyncio.to_thread(_state(request).records.create_case, _user(request),
                                   body.id, body.title)


@router.get("/cases/{case_id}")
async def case_file(request: Request, case_id: str) -> dict:
    return await asyncio.to_thread(_state(request).records.case_file, case_id)


@router.post("/cases/{case_id}/uploads")
async def upload(request: Request, case_id: str,
                 image: Annotated[UploadFile | None, File()] = None) -> dict:
    """Store the original crime-scene image (JPEG/PNG/TIFF); refused unread when its header
    declares more than `max_image_pixels`."""
    data = await _read(image, "image", request)
    return await asyncio.to_thread(
        _state(request).records.add_upload, _user(request), case_id, data,
        image.filename or "image", _gateway(request).settings.max_image_pixels)


def _viewable(data: bytes, max_pixels: int) -> bytes:
    check_pixel_budget(data, "upload", max_pixels)
    with Image.open(io.BytesIO(data)) as image:
        rgb = np.asarray(image.convert("RGB"))
    return encode_png(rgb)


@router.get("/cases/{case_id}/uploads/{sha256}/view.png")
async def view_upload(request: Request, case_id: str, sha256: str) -> Response:
    """The original as PNG (browsers cannot show TIFF); the stored bytes stay untouched."""
    data = await asyncio.to_thread(_state(request).records.upload_bytes, case_id, sha256)
    png = await asyncio.to_thread(_viewable, data, _gateway(request).settings.max_image_pixels)
    return Response(png, media_type=PNG, headers={"Cache-Control": "private, max-age=3600"})


@router.post("/cases/{case_id}/prepare")
async def prepare_preview(request: Request, case_id: str,
                          upload_sha256: Annotated[str, Form()],
                          preparation: Annotated[str, Form()]) -> Response:
    """The prepared print on the canvas exactly as a search with these parameters sees it
    (centred when the server is to search the placement)."""
    state, manifest = _state(request), _gateway(request)._manifest()
    params = parse_preparation(preparation)
    original = await asyncio.to_thread(state.records.upload_bytes, case_id, upload_sha256)
    scale = await asyncio.to_thread(state.px_per_cm, manifest)
    canvas = (manifest.canvas["height"], manifest.canvas["width"])
    image = await asyncio.to_thread(prepare, original, params, canvas, scale)
    return Response(encode_png(image), media_type=PNG)


async def _placements(original: bytes, params: Preparation, mask_png: bytes,
                      canvas: tuple[int, int], scale: float) -> tuple[np.ndarray, list[tuple]]:
    """The mask as drawn and the (placement, print, visible region) to search: one, or with
    `placement: "search"` every candidate placement, the mask drawn over the centred print
    moving with it."""
    if params.placement != "search":
        image = await asyncio.to_thread(prepare, original, params, canvas, scale)
        drawn = decode_mask(mask_png, image)
        return drawn, [(None, image, drawn)]
    centred = params.model_copy(update={"placement": None})
    drawn = decode_mask(mask_png, await asyncio.to_thread(prepare, original, centred, canvas,
                                                          scale))
    tries = []
    for placement, shift in placement_candidates(canvas):
        visible = shift_mask(drawn, shift)
        moved = params.model_copy(update={"placement": placement})
        try:
            image = await asyncio.to_thread(prepare, original, moved, canvas, scale)
        except BlankPrintError:
            continue
        if visible.any():
            tries.append((placement, image, visible))
    if not tries:
        raise QueryError("placement search: the print or its mask leaves the canvas at every "
                         "position; place it by hand")
    return drawn, tries


async def _searched(request: Request, case_id: str, upload_sha256: str, params: Preparation,
                    mask_png: bytes, k: int, filters: str | dict | None
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Prepare the original, apply the mask and rank — the one path of a search and of its
    re-run. Returns the print searched, the mask as drawn and the answer; of several placements
    the one whose best match scores highest is kept."""
    state, gateway = _state(request), _gateway(request)
    manifest = gateway._manifest()
    original = await asyncio.to_thread(state.records.upload_bytes, case_id, upload_sha256)
    scale = await asyncio.to_thread(state.px_per_cm, manifest)
    canvas = (manifest.canvas["height"], manifest.canvas["width"])
    drawn, tries = await _placements(original, params, mask_png, canvas, scale)
    answers = await asyncio.gather(*(gateway.rank(image, visible, k, filters)
                                     for _, image, visible in tries))
    tops = [a["results"][0]["score"] if a["results"] else float("-inf") for a in answers]
    best = int(np.argmax(tops))
    placement, image, _ = tries[best]
    answer = answers[best]
    answer["index_px_per_cm"] = scale
    answer["placement"] = None if placement is None else {
        "chosen": placement.model_dump(),
        "tried": [{**p.model_dump(), "top_score": t} for (p, _, _), t in zip(tries, tops,
                                                                            strict=True)]}
    return image, drawn, answer


@router.post("/cases/{case_id}/queries")
async def search(request: Request, case_id: str, upload_sha256: Annotated[str, Form()],
                 preparation: Annotated[str, Form()],
                 mask: Annotated[UploadFile | None, File()] = None,
                 k: Annotated[int, Form()] = 100,
                 filters: Annotated[str | None, Form()] = None) -> dict:
    """Prepare the original, search with the drawn mask and filters, record the query."""
    params = parse_preparation(preparation)
    mask_png = await _read(mask, "mask", request)
    image, drawn, answer = await _searched(request, case_id, upload_sha256, params, mask_png,
                                           k, filters)
    query_id = await asyncio.to_thread(
        _state(request).records.record_query, _user(request), case_id, upload_sha256, params,
        encode_png(drawn.astype(np.uint8) * 255), encode_png(image), answer["filters"], k,
        answer)
    return {"query_id": query_id, **answer}


@router.post("/cases/{case_id}/queries/{query_id}/rerun")
async def rerun(request: Request, case_id: str, query_id: QueryId) -> dict:
    """Search again from the recorded original, parameters, mask and filters."""
    records = _state(request).records
    query = await asyncio.to_thread(records.query, case_id, query_id)
    _, _, answer = await _searched(request, case_id, query.upload_sha256,
                                   parse_preparation(query.preparation), query.mask_png,
                                   query.k, json.loads(query.filters))
    check = await asyncio.to_thread(records.record_rerun, _user(request), case_id, query_id,
                                    answer)
    return {"query_id": query_id, "recorded_index_version": query.index_version, **check,
            **answer}


@router.get("/cases/{case_id}/queries/{query_id}/{which}.png")
async def query_image(request: Request, case_id: str, query_id: QueryId, which: str) -> Response:
    """The prepared print (`print.png`) or mask (`mask.png`) a query searched with."""
    if which not in ("print", "mask"):
        raise CaseNotFound(f"no image {which!r}: use print.png or mask.png")
    query = await asyncio.to_thread(_state(request).records.query, case_id, query_id)
    return Response(query.print_png if which == "print" else query.mask_png, media_type=PNG)


@router.get("/cases/{case_id}/queries/{query_id}/heatmap/{model_id}.png")
async def heatmap(request: Request, case_id: str, query_id: QueryId, model_id: str) -> Response:
    """Per-cell similarity of the query and the model's best instance, over the print."""
    query = await asyncio.to_thread(_state(request).records.query, case_id, query_id)
    result = next((r for r in json.loads(query.results) if r["model_id"] == model_id), None)
    if result is None:
        raise CaseNotFound(f"model {model_id!r} is not in the ranking of query {query_id}")
    png = heatmap_png(result["cell_scores"], json.loads(query.visible_cells),
                      decode_image(query.print_png, "prepared print"))
    return Response(png, media_type=PNG)


@router.put("/cases/{case_id}/queries/{query_id}/decisions/{model_id}")
async def decide(request: Request, case_id: str, query_id: QueryId, model_id: str,
                 body: DecisionBody) -> dict:
    return await asyncio.to_thread(_state(request).records.set_decision, _user(request),
                                   case_id, query_id, model_id, body.decision, body.note)


@router.get("/cases/{case_id}/report.{kind}")
async def report(request: Request, case_id: str, kind: str) -> Response:
    """The case report as PDF or HTML; each export is itself an audit entry."""
    if kind not in ("pdf", "html"):
        raise CaseNotFound(f"no report format {kind!r}: use report.pdf or report.html")
    records = _state(request).records
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
    await asyncio.to_thread(records.record_export, _user(request), case_id, kind, body)
    return response


@router.get("/references/{instance_id}/{field}.png")
async def reference_image(request: Request, instance_id: str, field: str) -> Response:
    """A reference's print or depth map, to show a candidate beside the query."""
    if field not in ("print", "depth"):
        raise CaseNotFound(f"no reference image {field!r}: use print.png or depth.png")
    images = await asyncio.to_thread(_state(request).reference_images,
                                     _gateway(request)._manifest())
    if instance_id not in images.where:
        raise CaseNotFound(f"no reference {instance_id!r} in {images.dataset.uri}")
    png = await asyncio.to_thread(images.image, instance_id, field)
    if png is None:
        raise CaseNotFound(f"reference {instance_id} has no {field} image")
    return Response(png, media_type=PNG, headers={"Cache-Control": "private, max-age=3600"})
