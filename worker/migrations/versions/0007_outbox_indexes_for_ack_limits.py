"""Outbox indexes: the acknowledgement limits and the loop guard read them instead of the rows.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_purpose_recipient_created",
        "outbox",
        ["purpose", "recipient", "created_at", "status"],
    )
    op.create_index("ix_outbox_purpose_created", "outbox", ["purpose", "created_at", "status"])
    op.create_index("ix_outbox_message_id_header", "outbox", ["message_id_header"])


def downgrade() -> None:
    op.drop_index("ix_outbox_message_id_header", table_name="outbox")
    op.drop_index("ix_outbox_purpose_created", table_name="outbox")
    op.drop_index("ix_outbox_purpose_recipient_created", table_name="outbox")
