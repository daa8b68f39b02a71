"""The case records' tables (SQLAlchemy). The schema itself is created by Alembic migrations
(`migrations/`); these classes are how the code reads and writes rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Stamped:
    """When a row was written and by whom (the signed-in examiner)."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))


class Case(Stamped, Base):
    __tablename__ = "cases"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))


class Upload(Stamped, Base):
    """An original crime-scene image, byte for byte, keyed by its SHA-256."""

    __tablename__ = "uploads"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    filename: Mapped[str] = mapped_column(String(255))
    media_format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)


class Query(Stamped, Base):
    """One search of a case: its inputs (upload, preparation, mask, filters) and its answer."""

    __tablename__ = "queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    upload_sha256: Mapped[str] = mapped_column(ForeignKey("uploads.sha256"))
    preparation: Mapped[str] = mapped_column(Text)  # canonical JSON
    mask_png: Mapped[bytes] = mapped_column(LargeBinary)
    mask_sha256: Mapped[str] = mapped_column(String(64))
    print_png: Mapped[bytes] = mapped_column(LargeBinary)  # the prepared print, as searched
    print_sha256: Mapped[str] = mapped_column(String(64))
    filters: Mapped[str] = mapped_column(Text)  # canonical JSON
    k: Mapped[int] = mapped_column(Integer)
    index_version: Mapped[str] = mapped_column(String(64))
    index_px_per_cm: Mapped[float] = mapped_column(Float)
    model_uri: Mapped[str] = mapped_column(Text)
    placement: Mapped[str] = mapped_column(Text)  # JSON: placement search's choice, or null
    visible_cells: Mapped[str] = mapped_column(Text)  # JSON [h][w] of bools
    results: Mapped[str] = mapped_column(Text)  # JSON list of ranked matches
    result_digest: Mapped[str] = mapped_column(String(64))


class Decision(Stamped, Base):
    """An examiner's call on one candidate of a query. Rows are never changed: a new decision
    on the same candidate is a new row, and the latest one is the current call."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("queries.id"), index=True)
    model_id: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """One append-only, hash-chained audit entry (see `shoematch.cases.audit`)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed as written
    user: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)  # no fork of the chain
    hash: Mapped[str] = mapped_column(String(64), unique=True)
