"""Monitoring: mailbox_state.last_poll_seconds, how long the last successful poll took.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_poll_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox_state", schema=None) as batch_op:
        batch_op.drop_column("last_poll_seconds")
