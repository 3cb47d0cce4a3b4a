"""Personal API keys: ``sk-omni-`` plus 256 random bits, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.apikeys.models import ApiKey
from omnichat.auth.models import User
from omnichat.db.base import utcnow
from omnichat.errors import BadRequest, NotFound, Unauthorized

API_KEY_PREFIX = "sk-omni-"
MAX_KEYS_PER_USER = 50
MAX_EXPIRY_DAYS = 3650
# last_used_at is a hint for the owner, not an audit log: written at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=10)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def _live_key(keys: type[ApiKey]) -> ColumnElement[bool]:
    """Not expired (revoked keys are deleted rows)."""
    return or_(keys.expires_at.is_(None), keys.expires_at > utcnow())


@dataclass(frozen=True)
class CreatedKey:
    record: ApiKey
    key: str


class ApiKeyService:
    async def create(
        self, db: AsyncSession, user_id: str, name: str, *, expires_in_days: int | None = None
    ) -> CreatedKey:
        """A new key, valid for ``expires_in_days`` days (1 to ``MAX_EXPIRY_DAYS``) or until
        revoked (None). 400 past ``MAX_KEYS_PER_USER`` live keys; expired keys stay listed
        until one more would pass the limit, and are then deleted to make room."""
        count = await db.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.user_id == user_id)
        )
        if (count or 0) >= MAX_KEYS_PER_USER:
            expired = await db.execute(
                delete(ApiKey).where(ApiKey.user_id == user_id, ~_live_key(ApiKey))
            )
            removed = int(expired.rowcount)  # type: ignore[attr-defined]
            if (count or 0) - removed >= MAX_KEYS_PER_USER:
                raise BadRequest(f"At most {MAX_KEYS_PER_USER} API keys per user")
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(
            user_id=user_id,
            name=name,
            prefix=key[: len(API_KEY_PREFIX) + 4],
            key_hash=hash_api_key(key),
            expires_at=(
                None if expires_in_days is None else utcnow() + timedelta(days=expires_in_days)
            ),
        )
        db.add(record)
        await db.flush()
        return CreatedKey(record, key)

    async def list(self, db: AsyncSession, user_id: str) -> list[ApiKey]:
        rows = await db.execute(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at.desc())
        )
        return list(rows.scalars())

    async def revoke(self, db: AsyncSession, user_id: str, key_id: str) -> None:
        result = await db.execute(
            delete(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound("API key not found")

    async def revoke_all(self, db: AsyncSession, user_id: str) -> int:
        """Revokes every key of the user; returns how many there were."""
        result = await db.execute(delete(ApiKey).where(ApiKey.user_id == user_id))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def user_for_key(self, db: AsyncSession, key: str) -> tuple[User, ApiKey]:
        """The owner and record of a live key; 401 for an unknown, revoked or expired one
        (all alike)."""
        row = (
            await db.execute(
                select(User, ApiKey)
                .join(ApiKey, ApiKey.user_id == User.id)
                .where(
                    ApiKey.key_hash == hash_api_key(key),
                    _live_key(ApiKey),
                )
            )
        ).one_or_none()
        if row is None:
            raise Unauthorized("Invalid API key")
        user, record = row
        return user, record

    def needs_touch(self, record: ApiKey) -> bool:
        return record.last_used_at is None or utcnow() - record.last_used_at > LAST_USED_RESOLUTION

    async def touch(self, db: AsyncSession, key_id: str) -> None:
        await db.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
