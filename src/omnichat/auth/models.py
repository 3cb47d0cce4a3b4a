from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from omnichat.db.base import Base, IdMixin, TimestampMixin, UTCDateTime, utcnow

EMAIL_MAX_CHARS = 254
NAME_MAX_CHARS = 100


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    # Stored lower-cased: the email is the identity and compares case-insensitively.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_CHARS), unique=True, nullable=False)
    username: Mapped[str | None] = mapped_column(String(NAME_MAX_CHARS))
    first_name: Mapped[str | None] = mapped_column(String(NAME_MAX_CHARS))
    last_name: Mapped[str | None] = mapped_column(String(NAME_MAX_CHARS))
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    # Bumped on password change: every access token carries the version it was issued under.
    token_version: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class TokenFamily(IdMixin, Base):
    """One login. Every refresh token rotated from it and every access token issued under it share
    the family; revoking it ends that login everywhere."""

    __tablename__ = "token_families"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(IdMixin, Base):
    __tablename__ = "refresh_tokens"

    family_id: Mapped[str] = mapped_column(
        ForeignKey("token_families.id", ondelete="CASCADE"), index=True, nullable=False
    )
    # SHA-256 of the opaque token: a database leak does not hand out live tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
