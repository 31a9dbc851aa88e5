"""API tokens (bearer tokens of the JSON API, kept as SHA-256); daily analytics counts

The counts of settled days (storage/analytics_days.py) start empty: they are filled by the
first analytics request that needs them, from the surveys, which stay the source of truth.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 19:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "analytics_days",
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("surveys", sa.Integer(), nullable=False),
        sa.Column("aggregated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("local_date"),
    )
    op.create_table(
        "analytics_day_counts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("rework", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_analytics_day_counts_dim_date", "analytics_day_counts", ["dim", "local_date"]
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_day_counts_dim_date", table_name="analytics_day_counts")
    op.drop_table("analytics_day_counts")
    op.drop_table("analytics_days")
    op.drop_table("api_tokens")
