"""control list: a partial index of the requests returned for rework, by day

The control list, its counts and its filter choices read only the unsatisfied surveys of a
period (about 12 % of them). This index holds only those, by local day, with (on
PostgreSQL) the columns the list sorts and filters on and the summary groups by, so a page's
ids and the summary are index-only scans of that part instead of reading every survey of the
period from the table (bench/control_bench.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 21:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSATISFIED = sa.text("outcome = 'unsatisfied'")
COVERED = ["closed_at", "id", "reason", "round_no", "executor_id", "executor_name",
           "category", "category_name"]  # fmt: skip


def upgrade() -> None:
    op.create_index(
        "ix_surveys_control",
        "surveys",
        ["local_date"],
        postgresql_where=UNSATISFIED,
        postgresql_include=COVERED,
        sqlite_where=UNSATISFIED,
    )


def downgrade() -> None:
    op.drop_index("ix_surveys_control", table_name="surveys")
