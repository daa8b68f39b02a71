"""Check the case database's audit chain (and show its tail).

    python -m jobs.audit verify [--db URL]      # exit 0 when intact, 1 naming the broken entry
    python -m jobs.audit tail [--db URL] [-n 20]

URL: an SQLAlchemy URL; default `SHOEMATCH_DB_URL`, else the workbench's SQLite file.
"""

from __future__ import annotations

import argparse

from jobs.common import run_main
from shoematch.cases import audit
from shoematch.cases.db import open_engine, resolve_url, session_factory
from shoematch.cases.models import AuditEntry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["verify", "tail"])
    parser.add_argument("--db", help="SQLAlchemy URL of the case database")
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
        report = audit.verify(session)
    if report.ok:
        print(f"audit chain intact: {report.reason}")
        return 0
    print(f"audit chain BROKEN at entry {report.broken_id}: {report.reason}")
    return 1


if __name__ == "__main__":
    run_main(main)
