from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from omnichat.db.base import Base, IdMixin, UTCDateTime, utcnow


class ApiKey(IdMixin, Base):
    """A personal API key for OpenAI-style clients. Only its SHA-256 is stored; the key itself
    is shown once, at creation."""

    __tablename__ = "api_keys"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    # The first characters, to tell keys apart in a list without revealing them.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # None: valid until revoked. An expired key is refused like a revoked one.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
