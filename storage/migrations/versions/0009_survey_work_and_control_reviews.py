"""survey: executor, address, catalog category, district; control reviews

Adds what the portal sends about the work to each survey (older surveys keep NULL there,
shown as "unknown"; nothing is dropped or rewritten except that the catalog name of a stored
category is filled in), and the controllers' reviews of requests returned for rework.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-30 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("executor_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("executor_name", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("address", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("category_name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("district", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_surveys_local_date_executor", ["local_date", "executor_id"])
    op.create_table(
        "control_reviews",
        sa.Column("survey_id", sa.String(length=36), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.Column("reviewed_by", sa.String(length=100), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["survey_id"], ["surveys.id"]),
        sa.PrimaryKeyConstraint("survey_id"),
    )
    # The catalog name of each category already stored (one UPDATE per distinct text).
    from prompts.catalog import category_name

    bind = op.get_bind()
    surveys = sa.table("surveys", sa.column("category", sa.String), sa.column("category_name"))
    texts = bind.execute(sa.select(surveys.c.category).distinct()).scalars().all()
    for text in texts:
        name = category_name(text)
        if name is not None:
            bind.execute(
                surveys.update().where(surveys.c.category == text).values(category_name=name)
            )


def downgrade() -> None:
    op.drop_table("control_reviews")
    with op.batch_alter_table("surveys", schema=None) as batch_op:
        batch_op.drop_index("ix_surveys_local_date_executor")
        batch_op.drop_column("district")
        batch_op.drop_column("category_name")
        batch_op.drop_column("address")
        batch_op.drop_column("executor_name")
        batch_op.drop_column("executor_id")
