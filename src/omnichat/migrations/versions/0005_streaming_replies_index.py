"""Partial index on replies still ``streaming``, for the reply heartbeat's periodic sweep.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STREAMING = sa.text("status = 'streaming'")


def upgrade() -> None:
    op.create_index(
        "ix_messages_streaming_updated",
        "messages",
        ["updated_at"],
        sqlite_where=_STREAMING,
        postgresql_where=_STREAMING,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_streaming_updated", table_name="messages")
