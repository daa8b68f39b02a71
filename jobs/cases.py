"""Back up and restore the case database, verifying its audit trail.

    python -m jobs.cases backup DEST [--db URL]
    python -m jobs.cases restore SRC [--db URL] [--replace] [--anchor LOCATION]

SQLite: the online backup API (a consistent copy while the workbench writes); PostgreSQL:
`pg_dump --format=custom` / `pg_restore` in one transaction. Restore refuses a database that
holds any record unless `--replace`. After a restore the audit trail is verified like
`python -m jobs.audit verify` (exit 1 naming each problem: a backup older than the latest signed
checkpoint shows as a missing tail, which is what was lost). URL: default `SHOEMATCH_DB_URL`,
else the workbench's SQLite file; LOCATION: default `SHOEMATCH_AUDIT_ANCHOR`.
"""

from __future__ import annotations

import argparse

from jobs.common import run_main
from shoematch.cases import audit
from shoematch.cases.anchor import Anchor
from shoematch.cases.backup import backup, restore
from shoematch.cases.db import open_engine, session_factory


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.cases", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    made = actions.add_parser("backup", help="copy the case database to a new file")
    made.add_argument("dest")
    back = actions.add_parser("restore", help="load a backup into the case database")
    back.add_argument("src")
    back.add_argument("--replace", action="store_true",
                      help="replace a database that already holds records")
    back.add_argument("--anchor", help="checkpoint location (default: SHOEMATCH_AUDIT_ANCHOR)")
    for sub in (made, back):
        sub.add_argument("--db", help="SQLAlchemy URL of the case database")
    return parser.parse_args(argv)


def verified(url: str, anchor: Anchor | None) -> audit.ChainReport:
    engine = open_engine(url)
    try:
        with session_factory(engine)() as session:
            return audit.verify(session, anchor)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.action == "backup":
        url = backup(args.dest, args.db)
        # The SQLite copy itself is checked; a PostgreSQL dump can only be checked by restoring
        # it, so its source is, just after the dump.
        checked = f"sqlite:///{args.dest}" if url.startswith("sqlite") else url
        return show(verified(checked, None), f"backed up to {args.dest}")
    url = restore(args.src, args.db, args.replace)
    return show(verified(url, Anchor.from_environment(args.anchor)), f"restored {args.src}")


def show(report: audit.ChainReport, done: str) -> int:
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print(f"{done}: audit chain intact, {report.entries} entries, each record has its entry")
        return 0
    print(f"{done}, but the audit trail is not intact: {len(report.problems)} problem(s)")
    for problem in report.problems:
        print(f"  - {problem}")
    return 1


if __name__ == "__main__":
    run_main(main)
