"""Cases, uploads, queries and decisions: every change in one transaction with its audit entry,
after all validation, so a refused request leaves nothing half-written."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime

from PIL import Image
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from shoematch.cases import audit
from shoematch.cases.anchor import Anchor, record_quietly
from shoematch.cases.db import open_engine, session_factory
from shoematch.cases.models import Case, Decision, Query, Upload
from shoematch.cases.preparation import Preparation
from shoematch.data.images import check_pixel_budget, decode_image
from shoematch.errors import CaseError, CaseNotFound

DECISIONS = ("possible match", "excluded", "inconclusive")
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UPLOAD_FORMATS = {"JPEG", "PNG", "TIFF"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def result_digest(results: list[dict]) -> str:
    """Digest of a ranking: rank, model and best instance of every row. Scores are left out:
    the query encoder batches concurrent requests, and a batch's float sums differ from a lone
    query's in the last bits, which can move a rounded score without changing the ranking."""
    rows = [[r["rank"], r["model_id"], r["instance_id"]] for r in results]
    return sha256(audit.canonical(rows).encode())


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """UTC, to the second, whatever the database gives back (SQLite drops the zone)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


class CaseRecords:
    """The case database behind the workbench (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, url: str | None = None, anchor: Anchor | None = None) -> None:
        """`anchor`: where the audit head is checkpointed after each commit (default: from
        `SHOEMATCH_AUDIT_ANCHOR`; none configured, none written)."""
        self.engine = open_engine(url)
        self.sessions = session_factory(self.engine)
        self.anchor = anchor or Anchor.from_environment()
        if self.anchor is not None:
            event.listen(self.sessions, "after_commit", self._checkpoint)
            event.listen(self.sessions, "after_rollback", self._forget_head)

    def _checkpoint(self, session: Session) -> None:
        head = session.info.pop(audit.PENDING_HEAD, None)
        if head is not None and self.anchor is not None:  # only listened to with an anchor
            record_quietly(self.anchor, *head)

    @staticmethod
    def _forget_head(session: Session) -> None:
        session.info.pop(audit.PENDING_HEAD, None)

    # --- reading ------------------------------------------------------------------------
    def _case(self, session: Session, case_id: str) -> Case:
        case = session.get(Case, case_id)
        if case is None:
            raise CaseNotFound(f"unknown case {case_id!r}")
        return case

    def _query(self, session: Session, case_id: str, query_id: int) -> Query:
        query = session.get(Query, query_id)
        if query is None or query.case_id != case_id:
            raise CaseNotFound(f"case {case_id!r} has no query {query_id}")
        return query

    def list_cases(self) -> list[dict]:
        with self.sessions() as session:
            cases = session.execute(select(Case).order_by(Case.created_at)).scalars()
            return [{"id": c.id, "title": c.title, "created_at": _iso(c.created_at),
                     "created_by": c.created_by} for c in cases]

    def upload_bytes(self, case_id: str, digest: str) -> bytes:
        """An upload's bytes (uploads are shared by content: the same photo in two cases is
        stored once; each case's audit log records its own upload entry)."""
        with self.sessions() as session:
            self._case(session, case_id)
            upload = session.get(Upload, digest)
            if upload is None:
                raise CaseNotFound(f"no upload with SHA-256 {digest} (upload the image first)")
            return upload.data

    def query_images(self, case_id: str) -> dict[int, tuple[bytes, bytes]]:
        """query id → (prepared print PNG, mask PNG) of every query of a case."""
        with self.sessions() as session:
            self._case(session, case_id)
            rows = session.execute(select(Query.id, Query.print_png, Query.mask_png)
                                   .where(Query.case_id == case_id))
            return {row[0]: (row[1], row[2]) for row in rows}

    def query(self, case_id: str, query_id: int) -> Query:
        with self.sessions() as session:
            return self._query(session, case_id, query_id)

    # --- writing ------------------------------------------------------------------------
    def create_case(self, user: str, case_id: str, title: str) -> dict:
        if not CASE_ID.match(case_id):
            raise CaseError(f"case id {case_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
        with self.sessions.begin() as session:
            if session.get(Case, case_id) is not None:
                raise CaseError(f"case {case_id!r} already exists")
            case = Case(id=case_id, title=title[:200], created_at=_now(), created_by=user)
            session.add(case)
            audit.append(session, user, "case.create", case_id, {"title": case.title})
        return {"id": case_id, "title": case.title, "created_by": user}

    def add_upload(self, user: str, case_id: str, data: bytes, filename: str,
                   max_pixels: int) -> dict:
        """Store an original image once (by SHA-256) after checking its header and decoding it."""
        width, height = check_pixel_budget(data, filename or "image", max_pixels)
        decode_image(data, filename or "image")  # refuses a truncated or corrupt file
        with Image.open(io.BytesIO(data)) as image:
            media_format = image.format or "?"
        if media_format not in UPLOAD_FORMATS:
            raise CaseError(f"{filename}: {media_format} images are not accepted "
                            f"(use {', '.join(sorted(UPLOAD_FORMATS))})")
        digest = sha256(data)
        with self.sessions.begin() as session:
            self._case(session, case_id)
            if session.get(Upload, digest) is None:
                session.add(Upload(sha256=digest, data=data, filename=filename[:255],
                                   media_format=media_format, width=width, height=height,
                                   created_at=_now(), created_by=user))
            audit.append(session, user, "image.upload", case_id,
                         {"sha256": digest, "filename": filename, "format": media_format,
                          "width": width, "height": height, "bytes": len(data)})
        return {"sha256": digest, "width": width, "height": height, "format": media_format}

    def record_query(self, user: str, case_id: str, upload_sha256: str, params: Preparation,
                     mask_png: bytes, print_png: bytes, filters: dict, k: int,
                     answer: dict) -> int:
        """Store a finished search (its inputs and ranking); returns the query id."""
        digest = result_digest(answer["results"])
        with self.sessions.begin() as session:
            self._case(session, case_id)
            query = Query(
                case_id=case_id, upload_sha256=upload_sha256,
                preparation=audit.canonical(params.model_dump(mode="json")),
                mask_png=mask_png, mask_sha256=sha256(mask_png), print_png=print_png,
                print_sha256=sha256(print_png), filters=audit.canonical(filters), k=k,
                index_version=answer["index_version"], model_uri=answer["model_uri"],
                index_px_per_cm=answer["index_px_per_cm"],
                placement=json.dumps(answer.get("placement")),
                visible_cells=json.dumps(answer["visible_cells"]),
                results=json.dumps(answer["results"]), result_digest=digest,
                created_at=_now(), created_by=user)
            session.add(query)
            session.flush()
            audit.append(session, user, "query.search", case_id, {
                "query_id": query.id, "upload_sha256": upload_sha256,
                "preparation": params.model_dump(mode="json"), "mask_sha256": query.mask_sha256,
                "print_sha256": query.print_sha256, "filters": filters, "k": k,
                "index_version": query.index_version, "model_uri": query.model_uri,
                "placement": answer.get("placement"), "result_digest": digest,
                "results": len(answer["results"])})
            return query.id

    def record_proposal(self, user: str, case_id: str | None, image_sha256: str,
                        proposal: dict) -> None:
        """Audit an automatic preparation proposal like a manual step: what was proposed for
        which photograph (the examiner's accepted or corrected values are recorded with the
        search that uses them)."""
        with self.sessions.begin() as session:
            if case_id is not None:
                self._case(session, case_id)
            audit.append(session, user, "preparation.propose", case_id,
                         {"image_sha256": image_sha256, **proposal})

    def record_rerun(self, user: str, case_id: str, query_id: int, answer: dict) -> dict:
        digest = result_digest(answer["results"])
        with self.sessions.begin() as session:
            query = self._query(session, case_id, query_id)
            same = digest == query.result_digest
            audit.append(session, user, "query.rerun", case_id, {
                "query_id": query_id, "index_version": answer["index_version"],
                "result_digest": digest, "recorded_digest": query.result_digest,
                "same_ranking": same})
        return {"result_digest": digest, "recorded_digest": query.result_digest,
                "same_ranking": same}

    def set_decision(self, user: str, case_id: str, query_id: int, model_id: str,
                     decision: str, note: str) -> dict:
        if decision not in DECISIONS:
            raise CaseError(f"decision {decision!r}: use one of {', '.join(DECISIONS)}")
        with self.sessions.begin() as session:
            query = self._query(session, case_id, query_id)
            if model_id not in {r["model_id"] for r in json.loads(query.results)}:
                raise CaseError(f"model {model_id!r} is not in the ranking of query {query_id}")
            previous = session.execute(
                select(Decision).where(Decision.query_id == query_id,
                                       Decision.model_id == model_id)
                .order_by(Decision.id.desc()).limit(1)).scalar_one_or_none()
            row = Decision(query_id=query_id, model_id=model_id, decision=decision,
                           note=note, created_at=_now(), created_by=user)
            session.add(row)
            audit.append(session, user, "decision.set", case_id, {
                "query_id": query_id, "model_id": model_id, "decision": decision,
                "note": note, "previous": None if previous is None else
                {"decision": previous.decision, "note": previous.note,
                 "by": previous.created_by}})
        return {"query_id": query_id, "model_id": model_id, "decision": decision, "note": note,
                "by": user}

    def record_export(self, user: str, case_id: str, kind: str, document: bytes) -> None:
        with self.sessions.begin() as session:
            self._case(session, case_id)
            audit.append(session, user, "report.export", case_id,
                         {"format": kind, "sha256": sha256(document)})

    # --- the case file ------------------------------------------------------------------
    def case_file(self, case_id: str) -> dict:
        """Everything recorded about a case, as the report and the page show it."""
        with self.sessions() as session:
            case = self._case(session, case_id)
            queries = session.execute(select(Query).where(Query.case_id == case_id)
                                      .order_by(Query.id)).scalars().all()
            out = []
            for query in queries:
                upload = session.get(Upload, query.upload_sha256)
                decisions: dict[str, dict] = {}
                for row in session.execute(select(Decision).where(Decision.query_id == query.id)
                                           .order_by(Decision.id)).scalars():
                    decisions[row.model_id] = {"decision": row.decision, "note": row.note,
                                               "by": row.created_by,
                                               "at": _iso(row.created_at)}
                out.append({
                    "id": query.id, "created_at": _iso(query.created_at),
                    "created_by": query.created_by,
                    "upload": {"sha256": upload.sha256, "filename": upload.filename,
                               "format": upload.media_format, "width": upload.width,
                               "height": upload.height},
                    "preparation": json.loads(query.preparation),
                    "mask_sha256": query.mask_sha256, "print_sha256": query.print_sha256,
                    "filters": json.loads(query.filters), "k": query.k,
                    "index_version": query.index_version, "model_uri": query.model_uri,
                    "index_px_per_cm": query.index_px_per_cm,
                    "placement": json.loads(query.placement),
                    "visible_cells": json.loads(query.visible_cells),
                    "results": json.loads(query.results),
                    "result_digest": query.result_digest, "decisions": decisions})
            return {"id": case.id, "title": case.title,
                    "created_at": _iso(case.created_at), "created_by": case.created_by,
                    "queries": out}
