"""Documents list the pages that yielded no text (``unread_pages``): scanned pages OCR could not
read, or pages over the OCR limits.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("unread_pages", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("documents", "unread_pages")
