"""The append-only, hash-chained audit log: who did what, when, with which inputs and results.

Each entry's hash covers its own fields and the previous entry's hash, so changing, removing or
reordering any row breaks the chain from that row on; `verify` names the first broken entry.
The database refuses UPDATE and DELETE on the table (triggers), the unique `prev_hash` refuses
a fork, and nothing in the API issues either. What a chain cannot show — its own end cut off,
or the whole database swapped for an older copy — `verify` finds two more ways: every case,
upload, query and decision row must have its entry, and the head must match the latest signed
checkpoint kept outside the database (`shoematch.cases.anchor`; docs/audit.md).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shoematch.cases.models import AuditEntry, Case, Decision, Query, Upload

if TYPE_CHECKING:
    from shoematch.cases.anchor import Anchor

GENESIS = "0" * 64
PENDING_HEAD = "audit_head"
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
        session.info[PENDING_HEAD] = (entry.id, entry.hash)  # checkpointed after the commit
        return entry


@dataclass(frozen=True)
class ChainReport:
    """What `verify` found: `problems` make it fail (the first broken entry is `broken_id`);
    `notes` say what was checked or could not be."""

    entries: int
    broken_id: int | None
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        return f"{self.entries} entries, chain intact"


def _walk(session: Session) -> tuple[int, int | None, str | None, dict[int, str], list]:
    """The chain in id order: (rows, first broken id, why, id → hash, entries as tuples)."""
    expected_prev, expected_id = GENESIS, 1
    broken: tuple[int, str] | None = None
    hashes: dict[int, str] = {}
    rows = []
    for entry in session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars():
        rows.append((entry.id, entry.action, entry.case_id, entry.details))
        hashes[entry.id] = entry.hash
        if broken is not None:
            continue
        if entry.id != expected_id:
            broken = (entry.id, f"entry {entry.id}: expected id {expected_id} (an entry "
                      "before it was removed)")
        elif entry.prev_hash != expected_prev:
            broken = (entry.id, f"entry {entry.id}: its link does not match the previous "
                      "entry's hash (an entry was removed or altered)")
        elif entry_hash(entry.id, entry.at, entry.user, entry.action, entry.case_id,
                        entry.details, entry.prev_hash) != entry.hash:
            broken = (entry.id, f"entry {entry.id} ({entry.action} by {entry.user} at "
                      f"{entry.at}): content does not match its hash (altered)")
        expected_prev, expected_id = entry.hash, entry.id + 1
    first, why = broken if broken else (None, None)
    return len(rows), first, why, hashes, rows


def _unrecorded_rows(session: Session, entries: list) -> list[str]:
    """Every case, upload, query and decision row must have its audit entry (a row whose entry
    was cut off, or a row written around the API); each one without is named."""
    created, uploaded, searched = set(), set(), set()
    decided: Counter = Counter()
    for _id, action, case_id, details in entries:
        try:
            body = json.loads(details)
        except ValueError:
            continue  # an altered entry: the chain walk names it
        if action == "case.create":
            created.add(case_id)
        elif action == "image.upload":
            uploaded.add(body.get("sha256"))
        elif action == "query.search":
            searched.add(body.get("query_id"))
        elif action == "decision.set":
            decided[(body.get("query_id"), body.get("model_id"), body.get("decision"),
                     body.get("note"))] += 1
    problems = [f"case {case_id!r} has no audit entry" for (case_id,) in
                session.execute(select(Case.id).order_by(Case.id)) if case_id not in created]
    problems += [f"upload {digest} has no audit entry" for (digest,) in
                 session.execute(select(Upload.sha256).order_by(Upload.sha256))
                 if digest not in uploaded]
    problems += [f"query {query_id} has no audit entry" for (query_id,) in
                 session.execute(select(Query.id).order_by(Query.id))
                 if query_id not in searched]
    for row in session.execute(select(Decision).order_by(Decision.id)).scalars():
        key = (row.query_id, row.model_id, row.decision, row.note)
        if decided[key] > 0:
            decided[key] -= 1
        else:
            problems.append(f"decision {row.id} (query {row.query_id}, {row.model_id}: "
                            f"{row.decision}) has no audit entry")
    return problems


def _against_checkpoint(anchor: Anchor, hashes: dict[int, str]) -> tuple[list[str], list[str]]:
    """Compare the chain with the latest signed head: a shorter chain lost its tail (or the
    database is an older copy); a different hash at the head means the chain was rewritten."""
    checkpoint, forged = anchor.latest()
    problems, notes = list(forged), []
    last = max(hashes, default=0)
    if checkpoint is None:
        notes.append(f"no checkpoint yet at {anchor.store.uri}")
        return problems, notes
    where = f"the checkpoint of {checkpoint.at} ({anchor.store.uri})"
    if last < checkpoint.entries:
        gone = (f"entry {last + 1} is" if last + 1 == checkpoint.entries else
                f"entries {last + 1}-{checkpoint.entries} are")
        problems.append(f"missing tail: {where} records {checkpoint.entries} entries, the "
                        f"database ends at entry {last}: {gone} gone (cut off, or the "
                        "database was replaced by an older copy)")
    elif hashes.get(checkpoint.entries) != checkpoint.head:
        problems.append(f"entry {checkpoint.entries} does not match {where} (the chain up to "
                        "it was rewritten or the entry removed)")
    else:
        notes.append(f"matches {where}: {checkpoint.entries} entries")
        if last > checkpoint.entries:
            notes.append(f"entries {checkpoint.entries + 1}-{last} are after the latest "
                         "checkpoint (a checkpoint write failed or is in progress)")
    return problems, notes


def verify(session: Session, anchor: Anchor | None = None) -> ChainReport:
    """Walk the chain in id order (the first entry whose id, link or hash is wrong is named),
    check that every record has its entry, and compare the head with the latest checkpoint."""
    count, broken_id, why, hashes, entries = _walk(session)
    problems = [why] if why else []
    problems += _unrecorded_rows(session, entries)
    notes = []
    if anchor is None:
        notes.append("not anchored (no SHOEMATCH_AUDIT_ANCHOR): a cut-off tail shows only "
                     "through records left without an entry")
    else:
        found, said = _against_checkpoint(anchor, hashes)
        problems += found
        notes += said
    return ChainReport(count, broken_id, tuple(problems), tuple(notes))
