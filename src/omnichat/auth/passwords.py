"""Password policy and hashing: argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1)."""

from __future__ import annotations

from functools import lru_cache

from anyio import to_thread
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from omnichat.errors import InvalidInput

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 128

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from real breach corpora.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password_policy(password: str, *, email: str | None = None) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"Password must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"Password must be at most {MAX_PASSWORD_CHARS} characters")
    lowered = password.lower()
    if lowered in _common_passwords():
        raise InvalidInput("Password is too common; choose a less guessable one")
    if email and lowered == email.lower():
        raise InvalidInput("Password must not be the email address")


async def hash_password(password: str) -> str:
    # ~20-50 ms of CPU in C with the GIL released: off the event loop.
    return await to_thread.run_sync(_hasher.hash, password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("omnichat-timing-equaliser")


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists: a missing account verifies a dummy hash."""
    target = password_hash if password_hash is not None else _dummy_hash()

    def _verify() -> bool:
        try:
            return _hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    ok = await to_thread.run_sync(_verify)
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def warm_up() -> None:
    """Compute the dummy hash and load the common-password list before the first login."""
    _dummy_hash()
    _common_passwords()
