"""Backups of the case database that restore: SQLite through its online backup API (a
consistent copy while the workbench writes), PostgreSQL through `pg_dump --format=custom` and
`pg_restore` in one transaction. A restore never overwrites a database holding any record
unless told to, and the audit trail is verified once the copy is in place."""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from shoematch.cases.db import resolve_url
from shoematch.errors import CaseError

RECORD_TABLES = ("cases", "uploads", "queries", "decisions", "audit_log")
PG_TIMEOUT_S = 3600


def _sqlite_path(url: URL) -> str:
    if not url.database or url.database == ":memory:":
        raise CaseError(f"{url}: a backup needs an SQLite file, not an in-memory database")
    return url.database


def _pg_tool(name: str) -> str:
    """The newest installed PostgreSQL client tool (it must be at least the server's version)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or \
        [p for p in [shutil.which(name)] if p]
    if not found:
        raise CaseError(f"{name} not found: install PostgreSQL's client tools "
                        "(Debian: apt-get install postgresql-client)")
    return found[-1]


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq URL of an SQLAlchemy one, and an environment carrying its password (a
    password on a command line is visible to every user of the machine)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S)
    if done.returncode != 0:
        raise CaseError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")


def record_counts(url: str) -> dict[str, int]:
    """Rows per record table of the database at `url` (tables it lacks: absent). Opened
    without migrating: looking must not change the target."""
    engine = create_engine(url)
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            return {table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                    for table in RECORD_TABLES if table in present}
    finally:
        engine.dispose()


def backup(dest: str, url: str | None = None) -> str:
    """Copy the case database to `dest` (a new file); returns the database URL copied."""
    url = resolve_url(url)
    parsed = make_url(url)
    if os.path.exists(dest):
        raise CaseError(f"{dest} already exists: a backup never overwrites a file")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() == "sqlite":
        source = _sqlite_path(parsed)
        if not os.path.exists(source):
            raise CaseError(f"no case database at {source}")
        with closing(sqlite3.connect(source)) as live, closing(sqlite3.connect(dest)) as copy:
            live.backup(copy)
    elif parsed.get_backend_name() == "postgresql":
        target, env = _libpq(parsed)
        _run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--file", dest,
              "--dbname", target], env, "pg_dump")
    else:
        raise CaseError(f"{parsed.get_backend_name()}: backups cover SQLite and PostgreSQL")
    return url


def restore(src: str, url: str | None = None, replace: bool = False) -> str:
    """Load a backup made by `backup` into the database at `url`; returns that URL. Refuses a
    database that holds any record unless `replace` (nothing is lost by mistake)."""
    url = resolve_url(url)
    parsed = make_url(url)
    if not os.path.isfile(src):
        raise CaseError(f"no backup file at {src}")
    held = {table: n for table, n in record_counts(url).items() if n}
    if held and not replace:
        summary = ", ".join(f"{n} {table}" for table, n in held.items())
        raise CaseError(f"the case database at {parsed.render_as_string()} is not empty "
                        f"({summary}); restoring would replace them: back it up first, then "
                        "pass --replace")
    if parsed.get_backend_name() == "sqlite":
        target = _sqlite_path(parsed)
        with closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as copy:
            try:
                tables = {row[0] for row in copy.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as exc:
                raise CaseError(f"{src} is not an SQLite backup ({exc})") from exc
            if "audit_log" not in tables:
                raise CaseError(f"{src} is not a case database backup (no audit_log table)")
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(target)) as live:
                copy.backup(live)
    elif parsed.get_backend_name() == "postgresql":
        target, env = _libpq(parsed)
        _run([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
              "--single-transaction", "--exit-on-error", "--dbname", target, src], env,
             "pg_restore")
    else:
        raise CaseError(f"{parsed.get_backend_name()}: backups cover SQLite and PostgreSQL")
    return url
