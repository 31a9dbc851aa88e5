"""console: an index of the open deliveries (pending and dead) for the Now page

The Now page counts the delivery backlog, the dead letters and the failing deliveries behind
its portal alarms on every refresh; with a million delivered rows these few are scattered
over the whole table. This partial index holds only them, with the columns counted, so the
count reads a few index pages (EXPLAIN: 4 buffers instead of 1,843; bench/console_bench.py).

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-30 20:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("state IN ('pending', 'dead')")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_open",
        "deliveries",
        ["state", "tries", "http_status"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_open", table_name="deliveries")
