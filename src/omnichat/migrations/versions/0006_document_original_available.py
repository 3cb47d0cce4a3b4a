"""Documents record whether their stored original is really theirs (``original_available``).

Uploads before this revision could share one blob per user (``documents/<user>/None``): the key
was built before the row had its id. ``omnichat repair`` (run by ``omnichat serve``) moves each
original whose checksum matches to the document's own key and marks the others unavailable.

Plain ``ADD``/``DROP COLUMN`` on both backends (SQLite 3.35+ has both): a batch-mode copy of
``documents`` would drop the old table, and with foreign keys on, that deletes its chunks.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "documents",
        sa.Column("original_available", sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("documents", "original_available")
