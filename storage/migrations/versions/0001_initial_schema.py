"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 20:23:03.811463
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _imports()
    _rejected_items()
    _surveys()
    _call_attempts()
    _deliveries()


def _imports() -> None:
    """The nightly import runs."""
    op.create_table(
        "imports",
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("started_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("completed_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("local_date"),
    )


def _rejected_items() -> None:
    """Items the import rejected, once per day."""
    op.create_table(
        "rejected_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("portal_request_id", sa.String(length=200), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("local_date", "fingerprint", name="uq_rejected_once"),
    )
    with op.batch_alter_table("rejected_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rejected_items_local_date"), ["local_date"], unique=False
        )


def _surveys() -> None:
    """One survey per request closing."""
    op.create_table(
        "surveys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("portal_request_id", sa.String(length=200), nullable=False),
        sa.Column("request_number", sa.String(length=64), nullable=False),
        sa.Column("closed_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("phone_raw", sa.String(length=100), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("digit", sa.String(length=4), nullable=True),
        sa.Column("answered_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("completed_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("portal_request_id", "closed_at", name="uq_survey_request_closing"),
    )
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_surveys_local_date"), ["local_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_surveys_phone"), ["phone"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_surveys_portal_request_id"), ["portal_request_id"], unique=False
        )
        batch_op.create_index("ix_surveys_status_next", ["status", "next_attempt_at"], unique=False)


def _call_attempts() -> None:
    """Every dial of a survey."""
    op.create_table(
        "call_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("survey_id", sa.String(length=36), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("started_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("answered_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("ended_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("sip_call_id", sa.String(length=200), nullable=True),
        sa.Column("sip_status", sa.Integer(), nullable=True),
        sa.Column("sip_reason", sa.String(length=200), nullable=True),
        sa.Column("keys", sa.String(length=64), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("disposition", sa.String(length=20), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_attempts_survey_id"), ["survey_id"], unique=False)


def _deliveries() -> None:
    """The outbox of ratings."""
    op.create_table(
        "deliveries",
        sa.Column("survey_id", sa.String(length=36), nullable=False),
        sa.Column("portal_request_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
        ),
        sa.PrimaryKeyConstraint("survey_id"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_state_next", ["state", "priority", "next_try_at"], unique=False
        )


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_state_next")

    op.drop_table("deliveries")
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_attempts_survey_id"))

    op.drop_table("call_attempts")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index("ix_surveys_status_next")
        batch_op.drop_index(batch_op.f("ix_surveys_portal_request_id"))
        batch_op.drop_index(batch_op.f("ix_surveys_phone"))
        batch_op.drop_index(batch_op.f("ix_surveys_local_date"))

    op.drop_table("surveys")
    with op.batch_alter_table("rejected_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_items_local_date"))

    op.drop_table("rejected_items")
    op.drop_table("imports")
    # ### end Alembic commands ###
