"""The search API's routes: health, the index and its reload, label models, and the two
searches. Each reads its fields, decodes its uploads and hands the rest to the gateway."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from serve import cascade
from serve import rerank as dense
from serve.deps import GatewayDep
from serve.errors import MissingCapability
from serve.gateway import public
from serve.schemas import (
    AttributeValues,
    DescriptorScores,
    Health,
    IndexInfo,
    PhotoSearchResult,
    ReloadResult,
    SearchResult,
    errors,
)
from serve.uploads import decode_any_print, decode_mask, decode_photo, decode_print
from shoematch.errors import QueryError
from shoematch.index.filters import parse_filters

router = APIRouter()
K_FIELD = "ranked shoe models to return: 1 to the service's max_k (default 1000)"
MASK_FIELD = "visible region, 255 = visible; left out: the print's ink"
# The mask's default: documented as a plain optional file (`UploadFile | None` would read to
# clients as "a file or not a file"), typed Any so the checker takes None for an UploadFile.
NO_FILE: Any = None
MATCHER_FIELD = ("auto: the dense cascade when the index has it (and rerank is 0), else cells; "
                 "cascade; cells (CriSp cell ranking, optionally re-ranked)")
CANDIDATES_FIELD = ("references the cascade scores exactly (default: the index's scan config; "
                    "an index with no more references is scored exhaustively)")
RERANK_FIELD = ("models of the cell ranking to re-rank by dense (MCNCC) score, 0 to the "
                "service's max_rerank; needs an index built with --dense")
SCALE_FIELD = ("the print's scale in px/cm: the print is resampled to the index's scale "
               "(any size); left out: the print is on the index's canvas")


async def _k(request: Request, k: int, limit: int) -> int:
    """`k` as sent: left out → the default; empty or outside 1…limit → a bad field."""
    if (await request.form()).get("k") == "":
        raise QueryError(f"k: empty; give an integer from 1 to {limit}, or leave k out")
    if not 1 <= k <= limit:
        raise QueryError(f"k must be between 1 and {limit}, got {k}")
    return k


@router.get("/v1/health", response_model=Health)
async def health(gateway: GatewayDep) -> dict:
    version = gateway.slots.version
    return {"status": "ok" if version else "no_index", "index_version": version}


@router.get("/v1/index", response_model=IndexInfo, responses=errors(401, 503))
async def index(gateway: GatewayDep) -> dict:
    return gateway.index_info()


@router.post("/v1/index/reload", response_model=ReloadResult, responses=errors(401, 503))
async def reload(gateway: GatewayDep) -> dict:
    """Switch to the index's CURRENT version without dropping a request: every slot loads
    it beside the old one, then new requests use it; the old one goes once idle."""
    return await gateway.slots.reload()


@router.post("/v1/descriptors", response_model=DescriptorScores,
             responses=errors(400, 401, 409, 413, 503))
async def descriptors(gateway: GatewayDep,
                      print_image: Annotated[UploadFile, File(alias="print")]) -> dict:
    """NFRC descriptor scores (and labels above each descriptor's threshold) of a print."""
    image = await asyncio.to_thread(decode_any_print, await print_image.read())
    return await gateway.descriptors(image)


@router.post("/v1/attributes", response_model=AttributeValues,
             responses=errors(400, 401, 409, 413, 503))
async def attributes(gateway: GatewayDep, photo: Annotated[UploadFile, File()]) -> dict:
    """Attribute values (brand, category, …) with scores for a sole photo."""
    image = await asyncio.to_thread(decode_photo, await photo.read())
    return await gateway.attributes(image)


@router.post("/v1/search/photo", response_model=PhotoSearchResult,
             responses=errors(400, 401, 409, 413, 503))
async def search_photo(gateway: GatewayDep, request: Request,
                       photo: Annotated[UploadFile, File()],
                       k: Annotated[int, Form(description=K_FIELD)] = 100,
                       filters: Annotated[str | None, Form()] = None) -> dict:
    """Shoe models whose catalogue photos best match a sole photo (e.g. a detainee's)."""
    started = time.perf_counter()
    manifest = gateway.slots.manifest()
    if not manifest.photo_dim:
        raise MissingCapability(f"index version {manifest.version} has no catalogue-photo "
                                "features (re-index with --attribute-model)")
    k = await _k(request, k, gateway.settings.max_k)
    parsed = parse_filters(filters, manifest.attribute_values)
    image = await asyncio.to_thread(decode_photo, await photo.read())
    model, matches = await gateway.rank_photo(manifest.version, image, k, parsed.model_dump())
    return {"index_version": manifest.version, "model_uri": model,
            "k": k, "filters": parsed.model_dump(),
            "results": [{"rank": rank, "model_id": m.model, **public(m)}
                        for rank, m in enumerate(matches, start=1)],
            "timings_ms": {"total": round((time.perf_counter() - started) * 1e3, 2)}}


@router.post("/v1/search", response_model=SearchResult,
             responses=errors(400, 401, 409, 413, 503))
async def search(gateway: GatewayDep, request: Request,
                 print_image: Annotated[UploadFile, File(alias="print")],
                 mask: Annotated[UploadFile, File(description=MASK_FIELD)] = NO_FILE,
                 k: Annotated[int, Form(description=K_FIELD)] = 100,
                 filters: Annotated[str | None, Form()] = None,
                 rerank: Annotated[int, Form(description=RERANK_FIELD)] = 0,
                 px_per_cm: Annotated[float | None, Form(description=SCALE_FIELD)] = None,
                 matcher: Annotated[str, Form(description=MATCHER_FIELD)] = "auto",
                 candidates: Annotated[int | None, Form(description=CANDIDATES_FIELD)] = None
                 ) -> dict:
    """Shoe models ranked by how well their treads match a crime-scene print: by the dense
    cascade on an index that has it (scan every reference, exact MCNCC on the best
    `candidates`), else by CriSp cells; `rerank=N` re-ranks the cells' top N densely."""
    started = time.perf_counter()
    manifest = gateway.slots.manifest()
    settings = gateway.settings
    k = await _k(request, k, settings.max_k)
    dense.check_rerank(manifest, rerank, settings.max_rerank)
    dense.check_scale(manifest, px_per_cm)
    if cascade.choose_matcher(manifest, matcher, rerank) == "cascade":
        cascade.check_candidates(manifest, candidates, settings.max_rerank)
    parse_filters(filters, manifest.attribute_values)  # a bad filter: before decoding
    canvas = (manifest.canvas["height"], manifest.canvas["width"])
    data = await print_image.read()
    image = await asyncio.to_thread(decode_print, data, canvas) if px_per_cm is None else \
        await asyncio.to_thread(decode_any_print, data)
    mask_data = None if mask is None else await mask.read()
    visible = await asyncio.to_thread(decode_mask, mask_data, image)
    if px_per_cm is not None:
        image, visible = dense.to_index_scale(image, visible, px_per_cm, manifest)
    decoded = time.perf_counter()
    answer = await gateway.rank(image, visible, k, filters, rerank, matcher, candidates)
    answer["timings_ms"]["decode"] = round((decoded - started) * 1e3, 2)
    answer["timings_ms"]["total"] = round((time.perf_counter() - started) * 1e3, 2)
    return answer
