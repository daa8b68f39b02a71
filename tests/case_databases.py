"""Case databases for the audit and backup tests: a fresh one per test on either backend
(an SQLite file, or a new database on the session's PostgreSQL server), five recorded entries,
and tampering as someone holding the database could."""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import create_engine, text

from shoematch.cases.preparation import Preparation
from shoematch.cases.records import CaseRecords
from shoematch.data.images import encode_png
from tests.test_cases import answer, photo

CASE = "2026-0412"


def new_database(backend: str, request, tmp_path, name: str = "cases") -> str:
    """The URL of an empty case database on `backend` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.sqlite"
    server = request.getfixturevalue("postgres")
    database = f"{name}_{uuid.uuid4().hex[:10]}"
    admin(server, f"CREATE DATABASE {database}")
    return f"{server.rsplit('/', 1)[0]}/{database}"


def admin(url: str, *statements: str) -> None:
    """Statements on the server's `postgres` database, outside a transaction."""
    engine = create_engine(f"{url.rsplit('/', 1)[0]}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def populate(records: CaseRecords) -> int:
    """Five entries: case, upload, search, two decisions; returns the query id."""
    records.create_case("alice", CASE, "Burglary, Elm St.")
    upload = records.add_upload("alice", CASE, photo(), "scene.png", 10_000)
    mask = encode_png(np.full((64, 128), 255, np.uint8))
    query_id = records.record_query("alice", CASE, upload["sha256"], Preparation(px_per_cm=10),
                                    mask, mask, {}, 5, answer())
    records.set_decision("bob", CASE, query_id, "M001", "possible match", "toe agrees")
    records.set_decision("bob", CASE, query_id, "M003", "excluded", "heel differs")
    return query_id


def unguard(records: CaseRecords) -> None:
    """Drop the append-only triggers, as someone holding the database can."""
    drops = (["DROP TRIGGER audit_log_append_only ON audit_log"]
             if records.engine.dialect.name == "postgresql" else
             ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"])
    with records.engine.begin() as connection:
        for statement in drops:
            connection.execute(text(statement))


def run_sql(records: CaseRecords, statement: str) -> None:
    """One statement with the guards dropped."""
    unguard(records)
    with records.engine.begin() as connection:
        connection.execute(text(statement))
