"""spoken comments of unsatisfied citizens (portal API 1.1)

Revision ID: 0008
Revises: 0009
Create Date: 2026-11-30 17:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("survey_id", sa.String(length=36), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("portal_request_id", sa.String(length=200), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", sa.DateTime(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("purged_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"], name="fk_comments_survey"),
        sa.ForeignKeyConstraint(["attempt_id"], ["call_attempts.id"], name="fk_comments_attempt"),
        sa.PrimaryKeyConstraint("survey_id"),
    )
    op.create_index("ix_comments_state_next", "comments", ["state", "next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_comments_state_next", table_name="comments")
    op.drop_table("comments")
