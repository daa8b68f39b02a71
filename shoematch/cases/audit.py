"""The append-only, hash-chained audit log: who did what, when, with which inputs and results.

Each entry's hash covers its own fields and the previous entry's hash, so changing, removing or
reordering any row breaks the chain from that row on; `verify` names the first broken entry.
The database refuses UPDATE and DELETE on the table (triggers), the unique `prev_hash` refuses
a fork, and nothing in the API issues either.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shoematch.cases.models import AuditEntry

GENESIS = "0" * 64
_append_lock = threading.Lock()


def canonical(value: object) -> str:
    """The one JSON spelling of a value: sorted keys, no spaces (what is hashed and stored)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry_id: int, at: str, user: str, action: str, case_id: str | None,
               details: str, prev_hash: str) -> str:
    body = canonical({"id": entry_id, "at": at, "user": user, "action": action,
                      "case_id": case_id, "details": details, "prev_hash": prev_hash})
    return hashlib.sha256(body.encode()).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def append(session: Session, user: str, action: str, case_id: str | None, details: dict
           ) -> AuditEntry:
    """Add the next entry in the caller's transaction (it commits or rolls back with the
    records it describes: an audit entry exists exactly when its change does)."""
    with _append_lock:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
        last = session.execute(select(AuditEntry.id, AuditEntry.hash)
                               .order_by(AuditEntry.id.desc()).limit(1)).first()
        entry_id, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        at, body = now_iso(), canonical(details)
        entry = AuditEntry(id=entry_id, at=at, user=user, action=action, case_id=case_id,
                           details=body, prev_hash=prev,
                           hash=entry_hash(entry_id, at, user, action, case_id, body, prev))
        session.add(entry)
        session.flush()
        return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    broken_id: int | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def verify(session: Session) -> ChainReport:
    """Walk the chain in id order; the first entry whose id, link or hash is wrong is named."""
    expected_prev, expected_id, count = GENESIS, 1, 0
    for entry in session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars():
        count += 1
        if entry.id != expected_id:
            return ChainReport(count, entry.id, f"entry {entry.id}: expected id {expected_id} "
                               "(an entry before it was removed)")
        if entry.prev_hash != expected_prev:
            return ChainReport(count, entry.id, f"entry {entry.id}: its link does not match the "
                               "previous entry's hash (an entry was removed or altered)")
        recomputed = entry_hash(entry.id, entry.at, entry.user, entry.action, entry.case_id,
                                entry.details, entry.prev_hash)
        if recomputed != entry.hash:
            return ChainReport(count, entry.id, f"entry {entry.id} ({entry.action} by "
                               f"{entry.user} at {entry.at}): content does not match its hash "
                               "(altered)")
        expected_prev, expected_id = entry.hash, entry.id + 1
    return ChainReport(count, None, f"{count} entries, chain intact")
