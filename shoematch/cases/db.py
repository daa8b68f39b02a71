"""The case database: SQLite file by default, PostgreSQL (or any SQLAlchemy URL) by
`SHOEMATCH_DB_URL`; the schema is brought to the latest Alembic revision on open."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

DB_URL_ENV = "SHOEMATCH_DB_URL"
DEFAULT_SQLITE = "runs/workbench/cases.sqlite"
MIGRATIONS = Path(__file__).with_name("migrations")


def resolve_url(url: str | None = None) -> str:
    """The given URL, else `SHOEMATCH_DB_URL`, else an SQLite file under runs/ (absolute, so
    every process that gets the URL opens the same file)."""
    url = url or os.environ.get(DB_URL_ENV)
    if url:
        return url
    path = Path(DEFAULT_SQLITE).resolve()
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the latest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_engine(url: str | None = None) -> Engine:
    """An engine on the case database, its schema migrated."""
    url = resolve_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
