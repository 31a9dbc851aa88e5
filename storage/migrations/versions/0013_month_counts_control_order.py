"""monthly analytics counts, reviewed counts, and the control list's keyset index

- ``analytics_month_counts`` / ``analytics_months``: the daily counts of a month whose days are
  all counted, summed once, so a year by executor reads ~12 rows per group instead of ~365;
- ``analytics_day_counts.reviewed``: of the unsatisfied ones, how many are reviewed (the control
  list's totals and "unreviewed" from the counts). The counts made before this revision did
  not have it: they are dropped here and counted again when next needed (the surveys stay the
  source of truth, nothing is lost);
- ``ix_surveys_control_order``: the requests returned for rework by (closed_at, id), covering
  what the list filters on, so a page is read in the list's order after the last one shown;
  ``ix_surveys_control_executor``: the same for one executor's list.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNSATISFIED = sa.text("outcome = 'unsatisfied'")
COVERED = ["local_date", "reason", "round_no", "executor_id", "category", "category_name"]


def upgrade() -> None:
    op.execute("DELETE FROM analytics_day_counts")
    op.execute("DELETE FROM analytics_days")
    with op.batch_alter_table("analytics_day_counts") as batch:
        batch.add_column(sa.Column("reviewed", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "analytics_months",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("aggregated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_table(
        "analytics_month_counts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("rework", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("reviewed", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_analytics_month_counts_dim_month", "analytics_month_counts", ["dim", "month"]
    )
    op.create_index(
        "ix_surveys_control_order",
        "surveys",
        ["closed_at", "id"],
        postgresql_where=UNSATISFIED,
        postgresql_include=COVERED,
        sqlite_where=UNSATISFIED,
    )
    op.create_index(
        "ix_surveys_control_executor",
        "surveys",
        ["executor_id", "closed_at", "id"],
        postgresql_where=UNSATISFIED,
        postgresql_include=["local_date", "reason", "round_no"],
        sqlite_where=UNSATISFIED,
    )


def downgrade() -> None:
    op.drop_index("ix_surveys_control_executor", table_name="surveys")
    op.drop_index("ix_surveys_control_order", table_name="surveys")
    op.drop_index("ix_analytics_month_counts_dim_month", table_name="analytics_month_counts")
    op.drop_table("analytics_month_counts")
    op.drop_table("analytics_months")
    with op.batch_alter_table("analytics_day_counts") as batch:
        batch.drop_column("reviewed")
