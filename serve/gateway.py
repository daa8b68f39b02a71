"""HTTP ingress (FastAPI): validation, auth, fan-out to every shard slot, exact merge, reload.

A ranking is returned only when every slot answered for the same index version; a slot that
cannot answer within `shard_timeout_s` (retrying while Serve restarts a dead replica) turns the
request into a 503 — never a ranking silently missing a shard.
"""

import asyncio
import os
import time
from collections import Counter
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from ray import serve

from serve.settings import ServeSettings
from serve.uploads import decode_any_print, decode_mask, decode_photo, decode_print
from serve.workbench import PUBLIC_PATHS, PUBLIC_PREFIXES, mount_workbench
from shoematch.cases.users import Users
from shoematch.errors import QueryError, SearchIndexError, ShoematchError
from shoematch.index.filters import parse_filters
from shoematch.index.layout import IndexManifest, read_current, read_manifest
from shoematch.index.merge import merge_top_k
from shoematch.index.reader import Match, slot_shards
from shoematch.log import get_logger

log = get_logger(__name__)
api = FastAPI(title="shoematch", description="Crime-scene shoeprint → ranked shoe models")
mount_workbench(api)
OPEN_PATHS = {"/v1/health", "/docs", "/openapi.json", *PUBLIC_PATHS}
RETIRE_WAIT_S = 60.0


class ShardUnavailable(ShoematchError):
    """A shard slot did not answer: the ranking would be incomplete."""


@api.exception_handler(QueryError)
async def _bad_request(_request: Request, exc: QueryError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=400)


@api.exception_handler(SearchIndexError)
@api.exception_handler(ShardUnavailable)
async def _unavailable(_request: Request, exc: ShoematchError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=503)


@api.middleware("http")
async def _guard(request: Request, call_next):
    """Bearer-token auth (named users, when any token is configured) and the upload limit;
    the user's name rides on the request (`request.state.user`) into the audit log."""
    settings: ServeSettings = request.app.state.settings
    users: Users = request.app.state.users
    shared = os.environ.get(settings.token_env)
    path = request.url.path
    request.state.user = "local"
    if users.enabled(shared) and path not in OPEN_PATHS and not path.startswith(PUBLIC_PREFIXES):
        user = users.resolve(request.headers.get("authorization"), shared)
        if user is None:
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        request.state.user = user
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes:
        return JSONResponse({"error": f"upload of {length} bytes exceeds the limit of "
                                      f"{settings.max_upload_bytes} bytes"}, status_code=413)
    return await call_next(request)


async def _read_upload(upload: UploadFile | None, what: str, limit: int) -> bytes | None:
    if upload is None:
        return None
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise QueryError(f"{what} exceeds the upload limit of {limit} bytes")
    return data


def _public(match: Match) -> dict:
    """A match as the API shows it (the model id is a field of its own, order is internal)."""
    body = match.to_dict()
    body.pop("model")
    body.pop("order")
    return body


@serve.deployment(max_ongoing_requests=64)
@serve.ingress(api)
class Gateway:
    def __init__(self, encoder, shards: list, labels, settings: dict) -> None:
        self.settings = ServeSettings.model_validate(settings)
        api.state.settings = self.settings
        api.state.users = Users.from_environment(self.settings.users_file)
        api.state.gateway = self
        self.encoder = encoder
        self.shards = shards
        self.labels = labels
        self.manifests: dict[str, IndexManifest] = {}
        self.inflight: Counter[str] = Counter()
        self.reload_lock = asyncio.Lock()
        current = read_current(self.settings.index)
        self.version = current
        if current is not None:
            self.manifests[current] = read_manifest(self.settings.index, current)

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
            except Exception as exc:  # replica died or restarting: any failure is retried
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

    # --- endpoints -----------------------------------------------------------------------
    @api.get("/v1/health")
    async def health(self) -> dict:
        return {"status": "ok" if self.version else "no_index", "index_version": self.version}

    @api.get("/v1/index")
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
                "label_sources": manifest.label_sources}

    @api.post("/v1/index/reload")
    async def reload(self) -> dict:
        """Switch to the index's CURRENT version without dropping a request: every slot loads
        it beside the old one, then new requests use it; the old one goes once idle."""
        async with self.reload_lock:
            target = await asyncio.to_thread(read_current, self.settings.index)
            if target is None:
                raise SearchIndexError(f"nothing published at {self.settings.index}")
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
            raise SearchIndexError(f"no {kind} model: the index was built without "
                                   f"--{kind}-model and the service names none")
        return uri

    async def _merged(self, method: str, version: str, payload, k: int, filters: dict
                      ) -> list[Match]:
        self.inflight[version] += 1
        try:
            answers = await asyncio.gather(*(
                self._ask(slot, method, version, payload, k, [filters])
                for slot in range(len(self.shards))))
        finally:
            self.inflight[version] -= 1
        return merge_top_k(([Match(**hit) for hit in answer["hits"][0]]
                            for answer in answers), k)

    @api.post("/v1/descriptors")
    async def descriptors(self, print_image: Annotated[UploadFile, File(alias="print")]) -> dict:
        """NFRC descriptor scores (and labels above each descriptor's threshold) of a print."""
        image = decode_any_print(await _read_upload(print_image, "print",
                                                    self.settings.max_upload_bytes))
        return await self.labels.descriptors.remote(self._label_model("descriptor"), image)

    @api.post("/v1/attributes")
    async def attributes(self, photo: Annotated[UploadFile, File()]) -> dict:
        """Attribute values (brand, category, …) with scores for a sole photo."""
        image = decode_photo(await _read_upload(photo, "photo", self.settings.max_upload_bytes))
        return await self.labels.attributes.remote(self._label_model("attribute"), image)

    @api.post("/v1/search/photo")
    async def search_photo(self, photo: Annotated[UploadFile, File()],
                           k: Annotated[int, Form()] = 100,
                           filters: Annotated[str | None, Form()] = None) -> dict:
        """Shoe models whose catalogue photos best match a sole photo (e.g. a detainee's)."""
        started = time.perf_counter()
        manifest = self._manifest()
        if not manifest.photo_dim:
            raise SearchIndexError(f"index version {manifest.version} has no catalogue-photo "
                                   "features (re-index with --attribute-model)")
        if not 1 <= k <= self.settings.max_k:
            raise QueryError(f"k must be between 1 and {self.settings.max_k}, got {k}")
        parsed = parse_filters(filters, set(manifest.attribute_values))
        image = decode_photo(await _read_upload(photo, "photo", self.settings.max_upload_bytes))
        model = self._label_model("attribute")
        features = await self.labels.photo_features.remote(model, image)
        matches = await self._merged("search_photo", manifest.version, features[None], k,
                                     parsed.model_dump())
        return {"index_version": manifest.version, "model_uri": model,
                "k": k, "filters": parsed.model_dump(),
                "results": [{"rank": rank, "model_id": m.model, **_public(m)}
                            for rank, m in enumerate(matches, start=1)],
                "timings_ms": {"total": round((time.perf_counter() - started) * 1e3, 2)}}

    @api.post("/v1/search")
    async def search(self, print_image: Annotated[UploadFile, File(alias="print")],
                     mask: Annotated[UploadFile | None, File()] = None,
                     k: Annotated[int, Form()] = 100,
                     filters: Annotated[str | None, Form()] = None) -> dict:
        started = time.perf_counter()
        manifest = self._manifest()
        limit = self.settings.max_upload_bytes
        image = decode_print(await _read_upload(print_image, "print", limit),
                             (manifest.canvas["height"], manifest.canvas["width"]))
        visible = decode_mask(await _read_upload(mask, "mask", limit), image)
        decoded = time.perf_counter()
        answer = await self.rank(image, visible, k, filters)
        answer["timings_ms"]["decode"] = round((decoded - started) * 1e3, 2)
        answer["timings_ms"]["total"] = round((time.perf_counter() - started) * 1e3, 2)
        return answer

    async def rank(self, image: np.ndarray, visible: np.ndarray, k: int,
                   filters: str | dict | None) -> dict:
        """Encode a print on the canvas with its visible region and rank the index's models:
        the one search path of `/v1/search` and of the workbench's case queries."""
        started = time.perf_counter()
        manifest = self._manifest()
        version = manifest.version
        if not 1 <= k <= self.settings.max_k:
            raise QueryError(f"k must be between 1 and {self.settings.max_k}, got {k}")
        parsed = parse_filters(filters, set(manifest.attribute_values))
        model_uri = self.settings.model or manifest.model_uri
        cells, visible_cells = await self.encoder.encode.remote((model_uri, image, visible))
        encoded = time.perf_counter()
        matches = await self._merged("search", version, cells[None], k, parsed.model_dump())
        done = time.perf_counter()
        return {
            "index_version": version,
            "model_uri": model_uri,
            "k": k,
            "filters": parsed.model_dump(),
            "visible_cells": np.asarray(visible_cells).astype(bool).tolist(),
            "results": [{"rank": rank, "model_id": m.model, **_public(m)}
                        for rank, m in enumerate(matches, start=1)],
            "timings_ms": {"encode": round((encoded - started) * 1e3, 2),
                           "search": round((done - encoded) * 1e3, 2)},
        }
