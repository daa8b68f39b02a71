"""Check the case database's audit chain (and show its tail).

    python -m jobs.audit verify [--db URL] [--anchor LOCATION]   # exit 0 intact, 1 naming
    python -m jobs.audit tail [--db URL] [-n 20]                 # each problem found

URL: an SQLAlchemy URL; default `SHOEMATCH_DB_URL`, else the workbench's SQLite file.
LOCATION: where the signed chain heads are (a directory or s3://bucket/prefix); default
`SHOEMATCH_AUDIT_ANCHOR`; the key comes from `SHOEMATCH_AUDIT_KEY` or `SHOEMATCH_AUDIT_KEY_FILE`.
"""

from __future__ import annotations

import argparse

from jobs.common import run_main
from shoematch.cases import audit
from shoematch.cases.anchor import Anchor
from shoematch.cases.db import open_engine, resolve_url, session_factory
from shoematch.cases.models import AuditEntry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["verify", "tail"])
    parser.add_argument("--db", help="SQLAlchemy URL of the case database")
    parser.add_argument("--anchor", help="checkpoint location (default: SHOEMATCH_AUDIT_ANCHOR)")
    parser.add_argument("-n", type=int, default=20, help="entries shown by tail")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = resolve_url(args.db)
    sessions = session_factory(open_engine(url))
    with sessions() as session:
        if args.action == "tail":
            rows = session.query(AuditEntry).order_by(AuditEntry.id.desc()).limit(args.n).all()
            for entry in reversed(rows):
                print(f"{entry.id:6d} {entry.at} {entry.user:12s} {entry.action:14s} "
                      f"{entry.case_id or '-':12s} {entry.details[:80]}")
            return 0
        report = audit.verify(session, Anchor.from_environment(args.anchor))
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print(f"audit chain intact: {report.entries} entries, each record has its entry")
        return 0
    where = f" at entry {report.broken_id}" if report.broken_id is not None else ""
    print(f"audit chain BROKEN{where}: {len(report.problems)} problem(s)")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    run_main(main)
