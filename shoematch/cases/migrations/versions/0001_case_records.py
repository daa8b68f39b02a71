"""Case records: cases, uploads, queries, decisions, and the append-only audit log.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_SQLITE_GUARDS = [
    f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
_POSTGRES_GUARDS = [
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
]


def _when() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _who() -> sa.Column:
    return sa.Column("created_by", sa.String(64), nullable=False)


def upgrade() -> None:
    op.create_table("cases", sa.Column("id", sa.String(64), primary_key=True),
                    sa.Column("title", sa.String(200), nullable=False), _when(), _who())
    op.create_table("uploads", sa.Column("sha256", sa.String(64), primary_key=True),
                    sa.Column("data", sa.LargeBinary, nullable=False),
                    sa.Column("filename", sa.String(255), nullable=False),
                    sa.Column("media_format", sa.String(16), nullable=False),
                    sa.Column("width", sa.Integer, nullable=False),
                    sa.Column("height", sa.Integer, nullable=False), _when(), _who())
    op.create_table(
        "queries", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.id"), nullable=False,
                  index=True),
        sa.Column("upload_sha256", sa.String(64), sa.ForeignKey("uploads.sha256"),
                  nullable=False),
        sa.Column("preparation", sa.Text, nullable=False),
        sa.Column("mask_png", sa.LargeBinary, nullable=False),
        sa.Column("mask_sha256", sa.String(64), nullable=False),
        sa.Column("print_png", sa.LargeBinary, nullable=False),
        sa.Column("print_sha256", sa.String(64), nullable=False),
        sa.Column("filters", sa.Text, nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("index_version", sa.String(64), nullable=False),
        sa.Column("index_px_per_cm", sa.Float, nullable=False),
        sa.Column("model_uri", sa.Text, nullable=False),
        sa.Column("placement", sa.Text, nullable=False),
        sa.Column("visible_cells", sa.Text, nullable=False),
        sa.Column("results", sa.Text, nullable=False),
        sa.Column("result_digest", sa.String(64), nullable=False), _when(), _who())
    op.create_table(
        "decisions", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("query_id", sa.Integer, sa.ForeignKey("queries.id"), nullable=False,
                  index=True),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False), _when(), _who())
    op.create_table(
        "audit_log", sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("user", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True))
    guards = _POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    for table in ("audit_log", "decisions", "queries", "uploads", "cases"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_log_append_only()")
