"""Submission cycle, version and details: a later list supersedes an earlier one, kept.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cycle", sa.String(length=20), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("details", sa.Text(), server_default="", nullable=False))
        batch_op.create_foreign_key(
            "fk_submission_supersedes", "submission", ["supersedes_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_constraint("fk_submission_supersedes", type_="foreignkey")
        batch_op.drop_column("details")
        batch_op.drop_column("supersedes_id")
        batch_op.drop_column("version")
        batch_op.drop_column("cycle")
