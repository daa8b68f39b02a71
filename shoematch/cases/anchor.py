"""Checkpoints of the audit chain's head, kept outside the case database.

A hash chain shows a changed or removed entry, but not its own end cut off, nor the whole
database swapped for an older copy: both leave an intact, shorter chain. So after every commit
that appends an entry, the chain's head (entry count and hash) is written as a checkpoint to a
second place — a directory or an `s3://bucket/prefix` (`SHOEMATCH_AUDIT_ANCHOR`) — with an
HMAC-SHA256 whose key the database never holds (`SHOEMATCH_AUDIT_KEY`, or a key file named by
`SHOEMATCH_AUDIT_KEY_FILE`). Each checkpoint is its own write-once object named by its entry
count (`heads/000000000042.json`), so the latest is the highest name and an append-only bucket
(S3 Object Lock) keeps them all; `verify` compares the chain with the latest valid one.
The key is read from the environment only: never logged, never in a config or runtime env.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from shoematch.cases.audit import canonical, now_iso
from shoematch.errors import ConfigError, StorageError
from shoematch.log import get_logger
from shoematch.storage import Store, open_store

ANCHOR_ENV = "SHOEMATCH_AUDIT_ANCHOR"
KEY_ENV = "SHOEMATCH_AUDIT_KEY"
KEY_FILE_ENV = "SHOEMATCH_AUDIT_KEY_FILE"
MIN_KEY_BYTES = 32
HEADS = "heads"

log = get_logger("cases.anchor")


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head after `entries` entries, as signed at `at`."""

    entries: int
    head: str
    at: str


def _key_from_environment() -> bytes:
    value = os.environ.get(KEY_ENV)
    if value is None and os.environ.get(KEY_FILE_ENV):
        path = os.environ[KEY_FILE_ENV]
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{KEY_FILE_ENV}: cannot read the audit key file {path} "
                              f"({exc.strerror})") from exc
    if value is None:
        raise ConfigError(f"{ANCHOR_ENV} is set but no audit key is: set {KEY_ENV} or "
                          f"{KEY_FILE_ENV} (a secret the case database never holds)")
    key = value.strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the audit key is {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                          "(e.g. `openssl rand -hex 32`)")
    return key


class Anchor:
    """Where the signed heads go, and the key that signs them."""

    def __init__(self, store: Store, key: bytes) -> None:
        self.store = store
        self._key = key

    def __repr__(self) -> str:  # never the key
        return f"Anchor({self.store.uri!r})"

    @classmethod
    def from_environment(cls, location: str | None = None) -> Anchor | None:
        """The anchor at `location` (else `SHOEMATCH_AUDIT_ANCHOR`); None when neither is set."""
        location = location or os.environ.get(ANCHOR_ENV)
        if not location:
            return None
        store = open_store(location)
        store.check()
        return cls(store, _key_from_environment())

    def _mac(self, body: dict) -> str:
        return hmac.new(self._key, canonical(body).encode(), hashlib.sha256).hexdigest()

    def record(self, entries: int, head: str) -> None:
        """Write the checkpoint of a committed head (its own object: never overwritten)."""
        body = {"entries": entries, "head": head, "at": now_iso()}
        document = canonical({**body, "hmac": self._mac(body)}).encode()
        self.store.write_bytes(f"{HEADS}/{entries:012d}.json", document)

    def latest(self) -> tuple[Checkpoint | None, list[str]]:
        """The newest checkpoint whose HMAC holds, and a line for each newer one that does not
        (written without the key: forged, or by another deployment)."""
        forged: list[str] = []
        for name in reversed(self.store.list(HEADS)):
            if not name.endswith(".json"):
                continue
            where = self.store.child_uri(HEADS, name)
            try:
                document = json.loads(self.store.read_bytes(f"{HEADS}/{name}"))
                body = {k: document[k] for k in ("entries", "head", "at")}
                mac = str(document["hmac"])
            except (ValueError, KeyError, TypeError) as exc:
                forged.append(f"checkpoint {where} is unreadable ({exc})")
                continue
            if not hmac.compare_digest(mac, self._mac(body)):
                forged.append(f"checkpoint {where}: its HMAC does not match (not written with "
                              "this deployment's audit key)")
                continue
            return Checkpoint(int(body["entries"]), str(body["head"]), str(body["at"])), forged
        return None, forged


def record_quietly(anchor: Anchor, entries: int, head: str) -> None:
    """Checkpoint after a commit. The change is already committed, so a failed write is
    logged, not raised: `verify` then reports the entries after the latest checkpoint."""
    try:
        anchor.record(entries, head)
    except StorageError as exc:
        log.error("audit checkpoint of entry %d not written: %s", entries, exc)
