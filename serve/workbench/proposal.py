"""`POST /v1/prepare`: the automatic preparation of a scene photograph, proposed to the examiner.

Why a separate route: the proposal only reads the photograph (no case needed), and the page
pre-fills its preparation step from it as a starting point; the examiner's accepted or corrected
values are what a search records. Each proposal is an audit entry like a manual step. A
photograph with nothing to find (no ruler, blank, a ruler only, too small) is still a proposal
saying what is missing, never an error; only bytes that are not an image are refused (400).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile

from serve.deps import CasesDep, GatewayDep, SettingsDep, UserDep, WorkbenchDep
from serve.schemas import errors
from serve.workbench.router import _read
from shoematch.cases.proposal import propose
from shoematch.cases.records import sha256
from shoematch.data.images import decode_image, encode_png

router = APIRouter(prefix="/v1", responses=errors(400, 401, 404, 413))


def _png64(mask: np.ndarray) -> str:
    return base64.b64encode(encode_png(mask.astype(np.uint8) * 255)).decode()


def proposal_body(grey: np.ndarray, canvas: tuple[int, int], index_px_per_cm: float) -> dict:
    """The proposal as JSON: the case file's preparation parameters, each value's confidence
    or reason, and the mask as PNG (base64) in the photograph's pixels and on the canvas."""
    proposal = propose(grey)
    body = proposal.as_dict()
    region = proposal.region
    params = proposal.preparation()
    mask = {"photo_png": _png64(region.mask) if region.mask is not None else None,
            "canvas_png": None, "confidence": region.confidence, "reason": region.reason}
    if region.found and params is not None:
        on_canvas = proposal.canvas_mask(params, canvas, index_px_per_cm)
        if on_canvas is not None and on_canvas.any():
            mask["canvas_png"] = _png64(on_canvas)
        else:
            mask["reason"] = "the proposed region leaves the sole canvas: paint it by hand"
    elif region.found:
        mask["reason"] = "no scale: the mask can be placed on the canvas once px/cm is set"
    body["mask"] = mask
    return body


@router.post("/prepare")
async def propose_preparation(gateway: GatewayDep, settings: SettingsDep, state: WorkbenchDep,
                              records: CasesDep, user: UserDep,
                              image: Annotated[UploadFile | None, File()] = None,
                              case_id: Annotated[str | None, Form()] = None) -> dict:
    """Ruler scale, rotation (toe right), crop and mask proposed for an uploaded photograph,
    each with its confidence (scores in [0, 1], not probabilities) or what could not be found."""
    data = await _read(image, "image", settings)
    name = image.filename if image is not None and image.filename else "image"
    grey = await asyncio.to_thread(decode_image, data, name, "L", settings.max_image_pixels)
    manifest = gateway.slots.manifest()
    scale = await asyncio.to_thread(state.px_per_cm, manifest)
    canvas = (manifest.canvas["height"], manifest.canvas["width"])
    body = await asyncio.to_thread(proposal_body, grey, canvas, scale)
    masks = body["mask"]
    audited = {**{k: v for k, v in body.items() if k != "mask"},
               "mask": {"confidence": masks["confidence"], "reason": masks["reason"],
                        "canvas_sha256": sha256(base64.b64decode(masks["canvas_png"]))
                        if masks["canvas_png"] else None}}
    digest = sha256(data)
    await asyncio.to_thread(records.record_proposal, user, case_id, digest, audited)
    return {"image_sha256": digest, **body}
