"""The gateway's logic behind the HTTP routes: ranking a print (encode, fan-out to every shard
slot, exact merge, confidence, dense re-rank), the label models, the index's description.

One `Gateway` per replica; its FastAPI app is built from it (`serve.api.build_api`), under Serve
by the deployment in `serve.app`, in process by `serve.local`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from serve import cascade
from serve import rerank as dense
from serve.errors import MissingCapability
from serve.guard import Admission
from serve.settings import ServeSettings
from serve.slots import ShardSlots, top_k
from shoematch.cases.users import Users
from shoematch.errors import QueryError
from shoematch.index.filters import parse_filters
from shoematch.index.layout import IndexManifest
from shoematch.index.reader import Match, slot_shards
from shoematch.retrieval.calibration import TOP
from shoematch.retrieval.confidence import GalleryMoments, ranking_evidence


def public(match: Match) -> dict:
    """A match as the API shows it (the model id is a field of its own, order is internal)."""
    body = match.to_dict()
    body.pop("model")
    body.pop("order")
    return body


class Gateway:
    """Handles of the encoder, the shard slots and the label models, and what one replica
    holds for them: its settings, users, admission control and the served index version."""

    def __init__(self, encoder: Any, shards: list, labels: Any, settings: dict) -> None:
        self.settings = ServeSettings.model_validate(settings)
        self.users = Users.from_environment(self.settings.users_file)
        self.encoder = encoder
        self.labels = labels
        self.slots = ShardSlots(shards, self.settings)
        self.admission = Admission(self.settings.max_inflight, self.settings.admission_wait_s,
                                   self.settings.request_timeout_s, self.settings.retry_after_s)

    def index_info(self) -> dict:
        """`GET /v1/index`: the served version's manifest and its shards by slot."""
        manifest = self.slots.manifest()
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

    def label_model(self, kind: str) -> str:
        """The descriptor or attribute model: from the settings, else the index's."""
        manifest = self.slots.current_manifest()
        uri = getattr(self.settings, f"{kind}_model") or (
            getattr(manifest, f"{kind}_model") if manifest else None)
        if not uri:
            raise MissingCapability(f"no {kind} model: the index was built without "
                                    f"--{kind}-model and the service names none")
        return uri

    async def descriptors(self, image: np.ndarray) -> dict:
        model = self.label_model("descriptor")
        async with self.admission.slot():
            return await self.labels.descriptors.remote(model, image)

    async def attributes(self, photo: np.ndarray) -> dict:
        model = self.label_model("attribute")
        async with self.admission.slot():
            return await self.labels.attributes.remote(model, photo)

    async def rank_photo(self, version: str, photo: np.ndarray, k: int, filters: dict
                         ) -> tuple[str, list[Match]]:
        """Shoe models whose catalogue photos best match `photo` in index `version` (one with
        photo features): the model used and the merged matches."""
        model = self.label_model("attribute")
        async with self.admission.slot():
            features = await self.labels.photo_features.remote(model, photo)
            return model, await self.slots.merged("search_photo", version, features[None], k,
                                                  filters)

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
        calibration = self.slots.calibration(version)
        calibrator = calibration.calibrator if calibration else None
        if calibrator is None:
            return {"z": z.tolist(), "p_top10": None, "confident": None, "confidence_reason":
                    calibration.reason if calibration else f"{version} has no calibration"}
        evidence = ranking_evidence([m.score for m in matches], moments)
        probability = float(calibrator.probability(evidence)[0])
        return {"z": z.tolist(), "p_top10": probability,
                "confident": probability >= calibrator.threshold, "confidence_reason": None}

    async def rank(self, image: np.ndarray, visible: np.ndarray, k: int,
                   filters: str | dict | None, rerank: int = 0, matcher: str = "auto",
                   candidates: int | None = None) -> dict:
        """Rank the index's models for a print on the canvas with its visible region: by the
        dense cascade (`matcher` auto on an index with scan maps, or cascade), else by cells
        (re-ranking the top `rerank` densely): the one search path of `/v1/search` and of the
        workbench's case queries."""
        started = time.perf_counter()
        manifest = self.slots.manifest()
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
            answers = await self.slots.answers("search", version, cells[None], wanted,
                                               parsed.model_dump())
            matches = top_k(answers, wanted)
            confidence = self._confidence(version, answers, matches)
            z_of = {m.model: z for m, z in zip(matches, confidence["z"], strict=True)}
            matches = matches[:max(k, rerank)]
            searched = time.perf_counter()
            ranked = await dense.rerank_matches(self.slots.ask, len(self.slots), manifest,
                                                matches, variants, rerank) if rerank else \
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
            "results": [{"rank": rank, "model_id": m.model, **public(m), "z": z_of[m.model],
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
            self.slots.inflight[version] += 1
            try:
                ranked, stages, slot_ms = await cascade.cascade_matches(
                    self.slots.ask, len(self.slots), manifest, variants, k, n, filters)
            finally:
                self.slots.inflight[version] -= 1
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
            # `score`: what ranked the model — its exact MCNCC score, else its scan score.
            "results": [{"rank": rank, "model_id": m.model, **public(m), "z": None,
                         "score": m.score if exact is None else exact, "dense_score": exact}
                        for rank, (m, exact) in enumerate(
                            ((m, dense.dense_field(score)) for m, score in ranked), start=1)],
            "timings_ms": {"admission": round((admitted - started) * 1e3, 2),
                           "encode": round((encoded - admitted) * 1e3, 2),
                           "search": round(slot_ms["scan"], 2),
                           "rerank": round((done - encoded) * 1e3 - slot_ms["scan"], 2)},
        }
