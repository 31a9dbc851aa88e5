"""node heartbeats

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-30 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_heartbeats",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("started_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("seen_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("calls_up", sa.Integer(), nullable=False),
        sa.Column("channel_cap", sa.Integer(), nullable=False),
        sa.Column("registration", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("node_heartbeats")
