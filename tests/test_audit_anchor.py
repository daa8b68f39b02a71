"""The audit trail cannot lose its tail: against SQLite and a real PostgreSQL server, with the
append-only triggers dropped (anyone holding the database can), each tampering — the tail cut
off, a middle entry deleted, one altered, a record written without its entry, the whole
database replaced by an older copy — is named by `python -m jobs.audit verify`, which checks
the chain, every record's entry, and the head signed outside the database."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest
from sqlalchemy import text

from shoematch.cases import audit
from shoematch.cases.anchor import KEY_ENV, Anchor
from shoematch.cases.records import CaseRecords
from tests.case_databases import CASE, admin, new_database, populate, run_sql
from tests.conftest import REPO


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> str:
    return new_database(request.param, request, tmp_path)


@pytest.fixture
def key(monkeypatch) -> str:
    value = secrets.token_hex(32)
    monkeypatch.setenv(KEY_ENV, value)
    return value


def verify_cli(url: str, anchor_dir: str | None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "jobs.audit", "verify", "--db", url]
    if anchor_dir:
        argv += ["--anchor", anchor_dir]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=os.environ.copy())


def snapshot(records: CaseRecords, url: str) -> Callable[[], None]:
    """Copy the database now; the returned function puts that copy in its place."""
    records.engine.dispose()
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        shutil.copyfile(path, path + ".old")
        return lambda: (records.engine.dispose(), shutil.copyfile(path + ".old", path))
    name = url.rsplit("/", 1)[1]
    admin(url, f"CREATE DATABASE {name}_old TEMPLATE {name}")
    return lambda: (records.engine.dispose(),
                    admin(url, f"DROP DATABASE {name}",
                           f"ALTER DATABASE {name}_old RENAME TO {name}"))


def test_intact_chain_matches_its_signed_head_and_the_key_stays_out(database, key, tmp_path):
    anchor_dir = str(tmp_path / "anchor")
    records = CaseRecords(database, Anchor.from_environment(anchor_dir))
    populate(records)
    heads = sorted(os.listdir(os.path.join(anchor_dir, "heads")))
    assert heads == [f"{n:012d}.json" for n in range(1, 6)]
    latest = json.loads(open(os.path.join(anchor_dir, "heads", heads[-1])).read())
    with records.sessions() as session:
        last = session.execute(text("SELECT hash FROM audit_log WHERE id = 5")).scalar_one()
    assert latest["entries"] == 5 and latest["head"] == last
    assert key not in json.dumps(latest) and key not in repr(records.anchor)
    cli = verify_cli(database, anchor_dir)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "matches the checkpoint" in cli.stdout and "5 entries" in cli.stdout
    assert key not in cli.stdout + cli.stderr
    # A checkpoint written without the key (here: a later head with a made-up HMAC) is named.
    forged = {**latest, "entries": 9, "hmac": "0" * 64}
    with open(os.path.join(anchor_dir, "heads", f"{9:012d}.json"), "w") as handle:
        json.dump(forged, handle)
    cli = verify_cli(database, anchor_dir)
    assert cli.returncode == 1 and "HMAC does not match" in cli.stdout, cli.stdout


def _truncate_tail(records, _url, _query_id):
    run_sql(records, "DELETE FROM audit_log WHERE id = 5")


def _delete_middle(records, _url, _query_id):
    run_sql(records, "DELETE FROM audit_log WHERE id = 3")


def _alter_one(records, _url, _query_id):
    run_sql(records, "UPDATE audit_log SET details = "
                     "replace(details, 'toe agrees', 'toe differs') WHERE id = 4")


def _row_without_entry(records, _url, query_id):
    with records.engine.begin() as connection:  # written around the API: no audit entry
        connection.execute(text(
            "INSERT INTO decisions (query_id, model_id, decision, note, created_at, created_by)"
            f" VALUES ({query_id}, 'M002', 'excluded', 'quietly', CURRENT_TIMESTAMP, 'mallory')"))


TAMPERING = {
    "truncated tail": (_truncate_tail, [
        "missing tail", "records 5 entries, the database ends at entry 4: entry 5 is gone",
        "decision 2 (query 1, M003: excluded) has no audit entry"]),
    "deleted middle entry": (_delete_middle, [
        "BROKEN at entry 4", "entry 4: expected id 3", "query 1 has no audit entry"]),
    "altered entry": (_alter_one, [
        "BROKEN at entry 4", "entry 4 (decision.set by bob", "(altered)"]),
    "record without entry": (_row_without_entry, [
        "decision 3 (query 1, M002: excluded) has no audit entry"]),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_named(database, key, tmp_path, tampering):
    anchor_dir = str(tmp_path / "anchor")
    records = CaseRecords(database, Anchor.from_environment(anchor_dir))
    query_id = populate(records)
    assert verify_cli(database, anchor_dir).returncode == 0
    tamper, expected = TAMPERING[tampering]
    tamper(records, database, query_id)
    cli = verify_cli(database, anchor_dir)
    assert cli.returncode == 1, cli.stdout + cli.stderr
    for line in expected:
        assert line in cli.stdout, f"{line!r} not in:\n{cli.stdout}"


def test_cut_off_search_is_named_without_an_anchor(database):
    """The issue's finding: the last entry (a search) deleted, the query row still there."""
    records = CaseRecords(database, anchor=None)
    populate(records)
    run_sql(records, "DELETE FROM audit_log WHERE id > 2")
    cli = verify_cli(database, None)
    assert cli.returncode == 1 and "query 1 has no audit entry" in cli.stdout, cli.stdout
    assert "not anchored" in cli.stdout


def test_older_copy_of_the_database_is_named(database, key, tmp_path):
    anchor_dir = str(tmp_path / "anchor")
    records = CaseRecords(database, Anchor.from_environment(anchor_dir))
    populate(records)
    put_back = snapshot(records, database)
    records.set_decision("carol", CASE, 1, "M004", "excluded", "arch differs")
    records.set_decision("carol", CASE, 1, "M001", "inconclusive", "second look")
    put_back()
    with records.sessions() as session:  # the older copy is consistent in itself ...
        assert audit.verify(session).ok
    cli = verify_cli(database, anchor_dir)  # ... but not with the signed head
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "missing tail" in cli.stdout and "entries 6-7 are gone" in cli.stdout
    assert "older copy" in cli.stdout
