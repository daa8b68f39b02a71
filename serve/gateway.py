"""HTTP ingress (FastAPI): validation, auth, fan-out to every shard slot, exact merge, reload.

A ranking is returned only when every slot answered for the same index version; a slot that
cannot answer within `shard_timeout_s` (retrying while Serve restarts a dead replica) turns the
request into a 503 — never a ranking silently missing a shard.
"""

import asyncio
import re
import time
from collections import Counter
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.config import BackpressureConfig
from starlette.exceptions import HTTPException

from serve import cascade
from serve import rerank as dense
from serve.guard import Admission, Overloaded, RequestGuard, retry_after
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
from serve.settings import ServeSettings
from serve.uploads import decode_any_print, decode_mask, decode_photo, decode_print
from serve.workbench import mount_workbench
from serve.workbench.router import CurrentGateway
from shoematch.cases.users import Users
from shoematch.errors import (
    IndexComponentMissing,
    QueryError,
    SearchIndexError,
    ShoematchError,
    StorageError,
)
from shoematch.index.filters import parse_filters
from shoematch.index.layout import IndexManifest, read_current, read_manifest
from shoematch.index.merge import merge_top_k
from shoematch.index.reader import Match, slot_shards
from shoematch.log import get_logger
from shoematch.retrieval.calibration import TOP
from shoematch.retrieval.confidence import (
    Calibration,
    GalleryMoments,
    load_calibration,
    ranking_evidence,
)
from shoematch.storage import open_store

log = get_logger(__name__)
api = FastAPI(title="shoematch", description="Crime-scene shoeprint → ranked shoe models")
api.add_middleware(RequestGuard)
mount_workbench(api)
RETIRE_WAIT_S = 60.0
K_FIELD = "ranked shoe models to return: 1 to the service's max_k (default 1000)"
# Documented as a plain optional file (a nullable one reads to clients as "not a file").
MASK_FIELD = "visible region, 255 = visible; left out: the print's ink"
MATCHER_FIELD = ("auto: the dense cascade when the index has it (and rerank is 0), else cells; "
                 "cascade; cells (CriSp cell ranking, optionally re-ranked)")
CANDIDATES_FIELD = ("references the cascade scores exactly (default: the index's scan config; "
                    "an index with no more references is scored exhaustively)")
RERANK_FIELD = ("models of the cell ranking to re-rank by dense (MCNCC) score, 0 to the "
                "service's max_rerank; needs an index built with --dense")
SCALE_FIELD = ("the print's scale in px/cm: the print is resampled to the index's scale "
               "(any size); left out: the print is on the index's canvas")


class ShardUnavailable(ShoematchError):
    """A shard slot did not answer: the ranking would be incomplete."""


class MissingCapability(ShoematchError):
    """The index (or the service) lacks what the route needs: not an outage, a 409."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _retry_after_s() -> float:
    settings = RequestGuard.settings
    return settings.retry_after_s if settings is not None else 1.0


@api.exception_handler(QueryError)
async def _bad_request(_request: Request, exc: QueryError) -> JSONResponse:
    return _error(400, str(exc))


@api.exception_handler(MissingCapability)
@api.exception_handler(IndexComponentMissing)
async def _conflict(_request: Request, exc: MissingCapability) -> JSONResponse:
    return _error(409, str(exc))


@api.exception_handler(SearchIndexError)
@api.exception_handler(StorageError)
@api.exception_handler(ShardUnavailable)
async def _unavailable(_request: Request, exc: ShoematchError) -> JSONResponse:
    return _error(503, str(exc), retry_after(_retry_after_s()))


@api.exception_handler(Overloaded)
async def _overloaded(_request: Request, exc: Overloaded) -> JSONResponse:
    return _error(503, str(exc), retry_after(exc.retry_after_s))


@api.exception_handler(HTTPException)
async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                        headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _bad_field(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's form/type errors in the one error shape, as 400, naming each field."""
    return _error(400, "; ".join(f"{_field(e['loc'])}: {_problem(e)}" for e in exc.errors()))


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


def _openapi_without_422(build=api.openapi):
    """FastAPI documents a 422 for every route with parameters; this API answers bad fields
    with 400 (documented per route), so the 422 and its schemas are dropped."""
    def openapi() -> dict:
        schema = build()
        for operations in schema["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema
    return openapi


api.openapi = _openapi_without_422()


async def _read_upload(upload: UploadFile | None) -> bytes | None:
    """The upload's bytes (the guard has already held the whole body to the limit)."""
    return None if upload is None else await upload.read()


async def _k(request: Request, k: int, limit: int) -> int:
    """`k` as sent: left out → the default; empty or outside 1…limit → a bad field."""
    if (await request.form()).get("k") == "":
        raise QueryError(f"k: empty; give an integer from 1 to {limit}, or leave k out")
    if not 1 <= k <= limit:
        raise QueryError(f"k must be between 1 and {limit}, got {k}")
    return k


def _refusal(exc: ShoematchError) -> ShoematchError:
    """The shard's own error behind Ray's wrapper (whose text is a traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, ShoematchError) else exc


def _public(match: Match) -> dict:
    """A match as the API shows it (the model id is a field of its own, order is internal)."""
    body = match.to_dict()
    body.pop("model")
    body.pop("order")
    return body


class Gateway:
    """The routes and their logic; deployed as `GatewayDeployment` (below), or run in process
    with direct handles by `serve.local.local_api`."""

    def __init__(self, encoder, shards: list, labels, settings: dict) -> None:
        self.settings = ServeSettings.model_validate(settings)
        RequestGuard.settings = self.settings
        RequestGuard.users = Users.from_environment(self.settings.users_file)
        CurrentGateway.gateway = self
        self.encoder = encoder
        self.shards = shards
        self.labels = labels
        self.manifests: dict[str, IndexManifest] = {}
        self.calibrators: dict[str, Calibration] = {}
        self.inflight: Counter[str] = Counter()
        self.reload_lock = asyncio.Lock()
        self.admission = Admission(self.settings.max_inflight, self.settings.admission_wait_s,
                                   self.settings.request_timeout_s, self.settings.retry_after_s)
        current = read_current(self.settings.index)
        self.version = current
        if current is not None:
            self.manifests[current] = read_manifest(self.settings.index, current)
            self.calibrators[current] = load_calibration(open_store(self.settings.index), current)

    # --- helpers -------------------------------------------------------------------------
    def _manifest(self) -> IndexManifest:
        if self.version is None:
            raise SearchIndexError(f"no index loaded: nothing published at {self.settings.index}"
                                   " (run jobs.reindex, then POST /v1/index/reload)")
        return self.manifests[self.version]

    async def _ask(self, slot: int, method: str, *args):
        """Call one slot, retrying while Serve replaces a dead replica, within the deadline."""
        deadline = time.monotonic() + self.settings.shard_timeout_s
        delay, last = 0.25, None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                call = getattr(self.shards[slot], method).remote(*args)
                return await asyncio.wait_for(call, timeout=remaining)
            except ShoematchError as exc:  # the shard refused the request: it would again
                raise _refusal(exc) from None
            except Exception as exc:  # replica died or restarting: retried
                last = exc
                log.warning("shard slot %d %s failed (%s); retrying", slot, method, exc)
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(2.0, delay * 2)
        raise ShardUnavailable(f"shard slot {slot} did not answer within "
                               f"{self.settings.shard_timeout_s:.0f} s ({type(last).__name__}: "
                               f"{last}); no partial ranking is returned")

    async def _retire(self, version: str) -> None:
        deadline = time.monotonic() + RETIRE_WAIT_S
        while self.inflight[version] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if version == self.version:
            return
        keep = [self.version] if self.version else []
        await asyncio.gather(*(self._ask(slot, "release", keep)
                               for slot in range(len(self.shards))), return_exceptions=True)
        self.manifests.pop(version, None)
        self.calibrators.pop(version, None)

    # --- endpoints -----------------------------------------------------------------------
    @api.get("/v1/health", response_model=Health)
    async def health(self) -> dict:
        return {"status": "ok" if self.version else "no_index", "index_version": self.version}

    @api.get("/v1/index", response_model=IndexInfo, responses=errors(401, 503))
    async def index(self) -> dict:
        manifest = self._manifest()
        slots = self.settings.slots
        shards = [{**entry.model_dump(include={"id", "rows", "models", "bytes"}),
                   "slot": slot} for slot in range(slots)
                  for entry in slot_shards(manifest, slot, slots)]
        return {"index_version": manifest.version, "created_at": manifest.created_at,
                "model_uri": manifest.model_uri, "counts": manifest.counts,
                "canvas": manifest.canvas, "grid": manifest.grid, "dim": manifest.dim,
                "dtype": manifest.dtype, "slots": slots, "shards": shards,
                "attribute_values": manifest.attribute_values,
                "label_sources": manifest.label_sources, "px_per_cm": manifest.px_per_cm,
                "dense": manifest.dense.model_dump() if manifest.dense else None}

    @api.post("/v1/index/reload", response_model=ReloadResult, responses=errors(401, 503))
    async def reload(self) -> dict:
        """Switch to the index's CURRENT version without dropping a request: every slot loads
        it beside the old one, then new requests use it; the old one goes once idle."""
        async with self.reload_lock:
            target = await asyncio.to_thread(read_current, self.settings.index)
            if target is None:
                raise SearchIndexError(f"nothing published at {self.settings.index}")
            # A calibrator may be fitted after its version went live: always re-read it.
            self.calibrators[target] = await asyncio.to_thread(
                load_calibration, open_store(self.settings.index), target)
            if target == self.version:
                return {"index_version": target, "changed": False}
            manifest = await asyncio.to_thread(read_manifest, self.settings.index, target)
            await asyncio.gather(*(self._ask(slot, "prepare", target)
                                   for slot in range(len(self.shards))))
            previous, self.version = self.version, target
            self.manifests[target] = manifest
            if previous:
                asyncio.create_task(self._retire(previous))
            log.info("serving index version %s (was %s)", target, previous)
            return {"index_version": target, "previous_version": previous, "changed": True}

    def _label_model(self, kind: str) -> str:
        """The descriptor or attribute model: from the settings, else the index's."""
        manifest = self.manifests.get(self.version) if self.version else None
        uri = getattr(self.settings, f"{kind}_model") or (
            getattr(manifest, f"{kind}_model") if manifest else None)
        if not uri:
            raise MissingCapability(f"no {kind} model: the index was built without "
                                    f"--{kind}-model and the service names none")
        return uri

    async def _answers(self, method: str, version: str, payload, k: int, filters: dict
                       ) -> list[dict]:
        self.inflight[version] += 1
        try:
            return await asyncio.gather(*(
                self._ask(slot, method, version, payload, k, [filters])
                for slot in range(len(self.shards))))
        finally:
            self.inflight[version] -= 1

    @staticmethod
    def _top_k(answers: list[dict], k: int) -> list[Match]:
        return merge_top_k(([Match(**hit) for hit in answer["hits"][0]]
                            for answer in answers), k)

    async def _merged(self, method: str, version: str, payload, k: int, filters: dict
                      ) -> list[Match]:
        return self._top_k(await self._answers(method, version, payload, k, filters), k)

    def _confidence(self, version: str, answers: list[dict], matches: list[Match]) -> dict:
        """Each match's z (its cell score against this query's gallery distribution) and the
        calibrated P(true model in the cell ranking's top 10); nulls, and the reason, when not."""
        moments = GalleryMoments()
        for answer in answers:
            moments = moments.merged(GalleryMoments(*answer["moments"][0]))
        if moments.count < 2 or not matches:
            return {"z": [None] * len(matches), "p_top10": None, "confident": None,
                    "confidence_reason": "fewer than two references were compared"}
        z = moments.z([m.score for m in matches])
        calibration = self.calibrators.get(version)
        calibrator = calibration.calibrator if calibration else None
        if calibrator is None:
            return {"z": z.tolist(), "p_top10": None, "confident": None, "confidence_reason":
                    calibration.reason if calibration else f"{version} has no calibration"}
        evidence = ranking_evidence([m.score for m in matches], moments)
        probability = float(calibrator.probability(evidence)[0])
        return {"z": z.tolist(), "p_top10": probability,
                "confident": probability >= calibrator.threshold, "confidence_reason": None}

    @api.post("/v1/descriptors", response_model=DescriptorScores,
              responses=errors(400, 401, 409, 413, 503))
    async def descriptors(self, print_image: Annotated[UploadFile, File(alias="print")]) -> dict:
        """NFRC descriptor scores (and labels above each descriptor's threshold) of a print."""
        image = await asyncio.to_thread(decode_any_print, await _read_upload(print_image))
        model = self._label_model("descriptor")
        async with self.admission.slot():
            return await self.labels.descriptors.remote(model, image)

    @api.post("/v1/attributes", response_model=AttributeValues,
              responses=errors(400, 401, 409, 413, 503))
    async def attributes(self, photo: Annotated[UploadFile, File()]) -> dict:
        """Attribute values (brand, category, …) with scores for a sole photo."""
        image = await asyncio.to_thread(decode_photo, await _read_upload(photo))
        model = self._label_model("attribute")
        async with self.admission.slot():
            return await self.labels.attributes.remote(model, image)

    @api.post("/v1/search/photo", response_model=PhotoSearchResult,
              responses=errors(400, 401, 409, 413, 503))
    async def search_photo(self, request: Request, photo: Annotated[UploadFile, File()],
                           k: Annotated[int, Form(description=K_FIELD)] = 100,
                           filters: Annotated[str | None, Form()] = None) -> dict:
        """Shoe models whose catalogue photos best match a sole photo (e.g. a detainee's)."""
        started = time.perf_counter()
        manifest = self._manifest()
        if not manifest.photo_dim:
            raise MissingCapability(f"index version {manifest.version} has no catalogue-photo "
                                    "features (re-index with --attribute-model)")
        k = await _k(request, k, self.settings.max_k)
        parsed = parse_filters(filters, manifest.attribute_values)
        image = await asyncio.to_thread(decode_photo, await _read_upload(photo))
        model = self._label_model("attribute")
        async with self.admission.slot():
            features = await self.labels.photo_features.remote(model, image)
            matches = await self._merged("search_photo", manifest.version, features[None], k,
                                         parsed.model_dump())
        return {"index_version": manifest.version, "model_uri": model,
                "k": k, "filters": parsed.model_dump(),
                "results": [{"rank": rank, "model_id": m.model, **_public(m)}
                            for rank, m in enumerate(matches, start=1)],
                "timings_ms": {"total": round((time.perf_counter() - started) * 1e3, 2)}}

    @api.post("/v1/search", response_model=SearchResult,
              responses=errors(400, 401, 409, 413, 503))
    async def search(self, request: Request,
                     print_image: Annotated[UploadFile, File(alias="print")],
                     mask: Annotated[UploadFile, File(description=MASK_FIELD)] = None,
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
        manifest = self._manifest()
        k = await _k(request, k, self.settings.max_k)
        dense.check_rerank(manifest, rerank, self.settings.max_rerank)
        dense.check_scale(manifest, px_per_cm)
        if cascade.choose_matcher(manifest, matcher, rerank) == "cascade":
            cascade.check_candidates(manifest, candidates, self.settings.max_rerank)
        parse_filters(filters, manifest.attribute_values)  # a bad filter: before decoding
        canvas = (manifest.canvas["height"], manifest.canvas["width"])
        data = await _read_upload(print_image)
        image = await asyncio.to_thread(decode_print, data, canvas) if px_per_cm is None else \
            await asyncio.to_thread(decode_any_print, data)
        visible = await asyncio.to_thread(decode_mask, await _read_upload(mask), image)
        if px_per_cm is not None:
            image, visible = dense.to_index_scale(image, visible, px_per_cm, manifest)
        decoded = time.perf_counter()
        answer = await self.rank(image, visible, k, filters, rerank, matcher, candidates)
        answer["timings_ms"]["decode"] = round((decoded - started) * 1e3, 2)
        answer["timings_ms"]["total"] = round((time.perf_counter() - started) * 1e3, 2)
        return answer

    async def rank(self, image: np.ndarray, visible: np.ndarray, k: int,
                   filters: str | dict | None, rerank: int = 0, matcher: str = "auto",
                   candidates: int | None = None) -> dict:
        """Rank the index's models for a print on the canvas with its visible region: by the
        dense cascade (`matcher` auto on an index with scan maps, or cascade), else by cells
        (re-ranking the top `rerank` densely): the one search path of `/v1/search` and of the
        workbench's case queries."""
        started = time.perf_counter()
        manifest = self._manifest()
        version = manifest.version
        if not 1 <= k <= self.settings.max_k:
            raise QueryError(f"k must be between 1 and {self.settings.max_k}, got {k}")
        dense.check_rerank(manifest, rerank, self.settings.max_rerank)
        parsed = parse_filters(filters, manifest.attribute_values)
        if cascade.choose_matcher(manifest, matcher, rerank) == "cascade":
            n = cascade.check_candidates(manifest, candidates, self.settings.max_rerank)
            return await self._cascade(manifest, image, visible, k, parsed.model_dump(), n,
                                       started)
        model_uri = self.settings.model or manifest.model_uri
        async with self.admission.slot():
            admitted = time.perf_counter()
            encoding = self.encoder.encode.remote((model_uri, image, visible))
            variants: list = []
            if rerank:
                (cells, visible_cells), variants = await asyncio.gather(
                    encoding, dense.probe_variants(self.encoder, manifest, image, visible))
            else:
                cells, visible_cells = await encoding
            encoded = time.perf_counter()
            wanted = max(k, rerank, TOP)  # the top 10 at least: the calibrator's evidence
            answers = await self._answers("search", version, cells[None], wanted,
                                          parsed.model_dump())
            matches = self._top_k(answers, wanted)
            confidence = self._confidence(version, answers, matches)
            z_of = {m.model: z for m, z in zip(matches, confidence["z"], strict=True)}
            matches = matches[:max(k, rerank)]
            searched = time.perf_counter()
            ranked = await dense.rerank_matches(self._ask, len(self.shards), manifest, matches,
                                                variants, rerank) if rerank else \
                [(m, None) for m in matches]
            done = time.perf_counter()
        return {
            "index_version": version,
            "model_uri": model_uri,
            "k": k,
            "filters": parsed.model_dump(),
            "matcher": "cells",
            "stages": [{"stage": "cells", "references": manifest.references},
                       *([{"stage": "exact", "references": len(ranked[:rerank])}]
                         if rerank else [])],
            "reranked": bool(rerank),
            "rerank": rerank,
            "visible_cells": np.asarray(visible_cells).astype(bool).tolist(),
            "p_top10": confidence["p_top10"],
            "confident": confidence["confident"],
            "confidence_reason": confidence["confidence_reason"],
            "results": [{"rank": rank, "model_id": m.model, **_public(m), "z": z_of[m.model],
                         **({"dense_score": dense.dense_field(score)} if rerank else {})}
                        for rank, (m, score) in enumerate(ranked[:k], start=1)],
            "timings_ms": {"admission": round((admitted - started) * 1e3, 2),
                           "encode": round((encoded - admitted) * 1e3, 2),
                           "search": round((searched - encoded) * 1e3, 2),
                           "rerank": round((done - searched) * 1e3, 2)},
        }


    async def _cascade(self, manifest: IndexManifest, image: np.ndarray, visible: np.ndarray,
                       k: int, filters: dict, n: int, started: float) -> dict:
        """The dense cascade's answer: the probe's dense variants once (encoder deployment),
        then the scan and the exact pass where the maps live (`serve.cascade`)."""
        version = manifest.version
        async with self.admission.slot():
            admitted = time.perf_counter()
            variants = await dense.probe_variants(self.encoder, manifest, image, visible)
            encoded = time.perf_counter()
            self.inflight[version] += 1
            try:
                ranked, stages, slot_ms = await cascade.cascade_matches(
                    self._ask, len(self.shards), manifest, variants, k, n, filters)
            finally:
                self.inflight[version] -= 1
            done = time.perf_counter()
        return {
            "index_version": version,
            "model_uri": manifest.model_uri,
            "k": k,
            "filters": filters,
            "matcher": "cascade",
            "stages": stages,
            "reranked": False,
            "rerank": 0,
            "visible_cells": np.asarray(variants[0][1]).astype(bool).tolist(),
            "p_top10": None,
            "confident": None,
            "confidence_reason": cascade.NO_CALIBRATION,
            "results": [{"rank": rank, "model_id": m.model, **_public(m), "z": None,
                         "dense_score": dense.dense_field(score)}
                        for rank, (m, score) in enumerate(ranked, start=1)],
            "timings_ms": {"admission": round((admitted - started) * 1e3, 2),
                           "encode": round((encoded - admitted) * 1e3, 2),
                           "search": round(slot_ms["scan"], 2),
                           "rerank": round((done - encoded) * 1e3 - slot_ms["scan"], 2)},
        }


# The gateway answers overload itself (`Admission`: 503, the API's error body, Retry-After), so
# it takes many requests at once; Serve's own queue limit is only the backstop behind it (its
# 503 carries Retry-After too, but Serve's plain-text body).
GatewayDeployment = serve.deployment(
    name="Gateway", max_ongoing_requests=256, max_queued_requests=512,
    backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
)(serve.ingress(api)(Gateway))
