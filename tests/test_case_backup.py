"""Backups that restore, on SQLite (online backup API) and a real PostgreSQL server
(pg_dump/pg_restore): `python -m jobs.cases backup` verifies the copy, `restore` loads it into an
empty database and verifies the audit trail against the signed head, refuses a database that
holds records unless `--replace` (nothing lost by mistake), and after a replace names the
entries the older backup lacks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from shoematch.cases.anchor import KEY_ENV, Anchor
from shoematch.cases.records import CaseRecords
from tests.case_databases import CASE, new_database, populate
from tests.conftest import REPO


def cases_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cases", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_backup_restores_verified_and_never_overwrites_by_mistake(backend, request, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv(KEY_ENV, secrets.token_hex(32))
    anchor_dir = str(tmp_path / "anchor")
    live = new_database(backend, request, tmp_path, "live")
    records = CaseRecords(live, Anchor.from_environment(anchor_dir))
    query_id = populate(records)
    dump = str(tmp_path / "backups" / "cases.bak")
    made = cases_cli("backup", dump, "--db", live)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "audit chain intact, 5 entries" in made.stdout
    again = cases_cli("backup", dump, "--db", live)
    assert again.returncode == 2 and "already exists" in again.stderr, again.stderr

    # Into an empty database: the same case file, and the chain matches the signed head.
    fresh = new_database(backend, request, tmp_path, "fresh")
    restored = cases_cli("restore", dump, "--db", fresh, "--anchor", anchor_dir)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "audit chain intact, 5 entries" in restored.stdout
    assert "matches the checkpoint" in restored.stdout
    assert CaseRecords(fresh, anchor=None).case_file(CASE) == records.case_file(CASE)

    # A database holding records is not overwritten without --replace ...
    records.set_decision("carol", CASE, query_id, "M004", "excluded", "arch differs")
    refused = cases_cli("restore", dump, "--db", live, "--anchor", anchor_dir)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not empty (1 cases, 1 uploads, 1 queries, 3 decisions, 6 audit_log)" in \
        refused.stderr and "--replace" in refused.stderr
    assert "M004" in records.case_file(CASE)["queries"][0]["decisions"]
    # ... and with it, the entry the backup lacks is named.
    replaced = cases_cli("restore", dump, "--db", live, "--replace", "--anchor", anchor_dir)
    assert replaced.returncode == 1, replaced.stdout + replaced.stderr
    assert "missing tail" in replaced.stdout and "entry 6 is gone" in replaced.stdout
    assert "M004" not in records.case_file(CASE)["queries"][0]["decisions"]

    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"not a backup" * 100)
    empty = new_database(backend, request, tmp_path, "empty")
    wrong = cases_cli("restore", str(junk), "--db", empty)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr, wrong.stderr
    assert ("not an SQLite backup" if backend == "sqlite" else "pg_restore failed") in \
        wrong.stderr
