"""The query-encoder deployment: batched (`@serve.batch`) CriSp encoding of uploaded prints.

Concurrent requests to a replica are encoded in one forward pass (`@serve.batch`), by the runtime
the settings name (`encoder_runtime`, default ONNX Runtime on CPU; eager PyTorch on a GPU), see
`shoematch/crisp/runtime.py`.

Requests name the encoder of the index version they search, so a reload to an index built with
another model switches encoders in step; the last two encoders stay loaded.

It also computes a re-ranked request's dense probe features (`dense_probe`), once per request:
this is the deployment that holds networks and autoscales with encoding load, so the gateway
stays an I/O tier and the shard replicas hold only maps and correlate (no backbone per slot).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import torch
from ray import serve

from shoematch.crisp.runtime import DEFAULT_RUNTIME, Runtime, prepare_encoder
from shoematch.crisp.store import load_encoder
from shoematch.dense.matcher import DenseConfig, DenseMatcher
from shoematch.errors import QueryError
from shoematch.index.encoding import query_cells

KEEP_MODELS = 2


@serve.deployment(max_ongoing_requests=32)
class QueryEncoder:
    def __init__(self, threads: int = 1, batch_size: int = 8, batch_wait_s: float = 0.005,
                 runtime: Runtime = DEFAULT_RUNTIME) -> None:
        torch.set_num_threads(threads)
        self.threads = threads
        self.runtime = runtime
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.models: dict[str, torch.nn.Module] = {}
        self.matchers: dict[str, DenseMatcher] = {}
        # Ray's `serve.batch` overloads type the wrapper as a plain callable; at run time it
        # has these setters (Ray's documented way to size batches per replica).
        self.encode.set_max_batch_size(batch_size)  # type: ignore[attr-defined]
        self.encode.set_batch_wait_timeout_s(batch_wait_s)  # type: ignore[attr-defined]

    def _model(self, uri: str) -> torch.nn.Module:
        if uri not in self.models:
            if len(self.models) >= KEEP_MODELS:
                self.models.pop(next(iter(self.models)))
            self.models[uri] = prepare_encoder(load_encoder(uri).model, self.runtime,
                                               self.threads, self.device)
        return self.models[uri]

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def encode(self, requests: list[tuple[str, np.ndarray, np.ndarray]]
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(model uri, print uint8 [H, W], visible bool [H, W]) → (cells [S, C], visible [h, w]),
        each request alone; Serve gathers concurrent ones into a batch."""
        return await self.encode_batch(requests)

    async def encode_batch(self, requests: list[tuple[str, np.ndarray, np.ndarray]]
                           ) -> list[tuple[np.ndarray, np.ndarray]]:
        results: list = [None] * len(requests)
        by_model: dict[str, list[int]] = {}
        for i, (uri, _, _) in enumerate(requests):
            by_model.setdefault(uri, []).append(i)
        for uri, items in by_model.items():
            prints = np.stack([requests[i][1] for i in items])
            masks = np.stack([requests[i][2] for i in items])
            model = await asyncio.to_thread(self._model, uri)
            cells, visible = await asyncio.to_thread(query_cells, model, prints, masks,
                                                     self.device)
            for j, i in enumerate(items):
                results[i] = (cells[j].numpy(), visible[j].numpy())
        return results

    def _matcher(self, config: dict) -> DenseMatcher:
        key = json.dumps(config, sort_keys=True)
        if key not in self.matchers:
            if len(self.matchers) >= KEEP_MODELS:
                self.matchers.pop(next(iter(self.matchers)))
            self.matchers[key] = DenseMatcher(DenseConfig.model_validate(config))
        return self.matchers[key]

    def _variants(self, config: dict, image: np.ndarray, mask: np.ndarray,
                  px_per_cm: float) -> dict:
        try:
            variants = self._matcher(config).probe_variants(image, mask, px_per_cm)
        except QueryError as exc:  # returned, not raised: the gateway answers 400 with it
            return {"error": str(exc)}
        return {"variants": [(maps.cpu().numpy(), cells.cpu().numpy())
                             for maps, cells in variants]}

    async def dense_probe(self, config: dict, image: np.ndarray, mask: np.ndarray,
                          px_per_cm: float) -> dict:
        """{"variants": [(features [C, h, w], visible cells [h, w])]} of a probe for the index's
        DenseConfig, or {"error": why it cannot be matched}."""
        return await asyncio.to_thread(self._variants, config, image, mask, px_per_cm)
