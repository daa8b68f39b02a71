"""Alembic environment: run by `shoematch.cases.db.migrate` with an open connection."""

from alembic import context

from shoematch.cases.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
