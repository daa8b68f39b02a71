"""The gateway's view of the shard slots: calls with retries, the index version they serve and
its switch (reload), and the current manifest and calibration.

A ranking is made only when every slot answered for the same index version; a slot that cannot
answer within `shard_timeout_s` (retrying while Serve restarts a dead replica) raises
`ShardUnavailable` — never a ranking silently missing a shard.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from serve.errors import ShardUnavailable
from serve.settings import ServeSettings
from shoematch.errors import SearchIndexError, ShoematchError
from shoematch.index.layout import IndexManifest, read_current, read_manifest
from shoematch.index.merge import merge_top_k
from shoematch.index.reader import Match
from shoematch.log import get_logger
from shoematch.retrieval.confidence import Calibration, load_calibration
from shoematch.storage import open_store

log = get_logger(__name__)
RETIRE_WAIT_S = 60.0


def _refusal(exc: ShoematchError) -> ShoematchError:
    """The shard's own error behind Ray's wrapper (whose text is a traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, ShoematchError) else exc


class ShardSlots:
    """Handles of every `IndexShard` slot (Serve's, or in-process ones from `serve.local`),
    the versions they hold and the one new requests use."""

    def __init__(self, shards: list, settings: ServeSettings) -> None:
        self.shards = shards
        self.settings = settings
        self.manifests: dict[str, IndexManifest] = {}
        self.calibrators: dict[str, Calibration] = {}
        self.inflight: Counter[str] = Counter()
        self.reload_lock = asyncio.Lock()
        self.version = read_current(settings.index)
        if self.version is not None:
            self.manifests[self.version] = read_manifest(settings.index, self.version)
            self.calibrators[self.version] = load_calibration(open_store(settings.index),
                                                              self.version)

    def __len__(self) -> int:
        return len(self.shards)

    def manifest(self) -> IndexManifest:
        """The manifest of the version new requests use (503 when nothing is published)."""
        if self.version is None:
            raise SearchIndexError(f"no index loaded: nothing published at {self.settings.index}"
                                   " (run jobs.reindex, then POST /v1/index/reload)")
        return self.manifests[self.version]

    def current_manifest(self) -> IndexManifest | None:
        """The served version's manifest, or None when nothing is published."""
        return self.manifests.get(self.version) if self.version else None

    def calibration(self, version: str) -> Calibration | None:
        return self.calibrators.get(version)

    async def ask(self, slot: int, method: str, *args: Any) -> Any:
        """Call one slot, retrying while Serve replaces a dead replica, within the deadline;
        a slot's refusal (its own error) is raised at once, never retried."""
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

    async def answers(self, method: str, version: str, payload: Any, k: int, filters: dict
                      ) -> list[dict]:
        """Every slot's answer to one query of `version` (counted in flight, so a reload
        retires the version only once its requests are done)."""
        self.inflight[version] += 1
        try:
            return await asyncio.gather(*(self.ask(slot, method, version, payload, k, [filters])
                                          for slot in range(len(self.shards))))
        finally:
            self.inflight[version] -= 1

    async def merged(self, method: str, version: str, payload: Any, k: int, filters: dict
                     ) -> list[Match]:
        return top_k(await self.answers(method, version, payload, k, filters), k)

    async def reload(self) -> dict:
        """Switch to the index's CURRENT version without dropping a request: every slot loads
        it beside the old one, then new requests use it; the old one goes once idle."""
        index = self.settings.index
        async with self.reload_lock:
            target = await asyncio.to_thread(read_current, index)
            if target is None:
                raise SearchIndexError(f"nothing published at {index}")
            # A calibrator may be fitted after its version went live: always re-read it.
            self.calibrators[target] = await asyncio.to_thread(
                load_calibration, open_store(index), target)
            if target == self.version:
                return {"index_version": target, "changed": False}
            manifest = await asyncio.to_thread(read_manifest, index, target)
            await asyncio.gather(*(self.ask(slot, "prepare", target)
                                   for slot in range(len(self.shards))))
            previous, self.version = self.version, target
            self.manifests[target] = manifest
            if previous:
                asyncio.create_task(self._retire(previous))
            log.info("serving index version %s (was %s)", target, previous)
            return {"index_version": target, "previous_version": previous, "changed": True}

    async def _retire(self, version: str) -> None:
        deadline = time.monotonic() + RETIRE_WAIT_S
        while self.inflight[version] > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if version == self.version:
            return
        keep = [self.version] if self.version else []
        await asyncio.gather(*(self.ask(slot, "release", keep)
                               for slot in range(len(self.shards))), return_exceptions=True)
        self.manifests.pop(version, None)
        self.calibrators.pop(version, None)


def top_k(answers: list[dict], k: int) -> list[Match]:
    """The exact top k of every slot's answer to one query."""
    return merge_top_k(([Match(**hit) for hit in answer["hits"][0]] for answer in answers), k)
