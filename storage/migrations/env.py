"""Alembic environment: the engine comes from the caller (storage.db.upgrade).

On PostgreSQL the migration transaction first takes an advisory lock, so several nodes
starting at once upgrade one after the other (the later ones find the schema at head)."""

from alembic import context
from sqlalchemy import text

import storage.analytics_tables  # noqa: F401  (its tables join Base.metadata)
from storage.models import Base

MIGRATION_LOCK = 0x1F2_2026  # any constant shared by every node

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
