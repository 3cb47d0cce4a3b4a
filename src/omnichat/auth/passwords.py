"""Password policy and hashing: argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from omnichat.errors import InvalidInput

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 128

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)

# Hashing runs on a few threads of its own, not the shared worker pool (up to 40 threads): each
# hash allocates 19 MiB, and glibc keeps such a block in the allocating thread's arena after it
# is freed, so a login on every pool thread in turn grew the process by 19 MiB a thread. A small
# pool also stops a burst of logins from taking more than the CPUs hashing.
_HASHING = ThreadPoolExecutor(
    max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="omnichat-argon2"
)
_T = TypeVar("_T")


async def _off_loop(fn: Callable[[], _T]) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, fn)


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
    return await _off_loop(lambda: _hasher.hash(password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("omnichat-timing-equaliser")


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists: a missing account verifies a dummy hash."""

    def _verify() -> bool:
        # The dummy hash is made here, off the loop, should a login come before ``warm_up``.
        target = password_hash if password_hash is not None else _dummy_hash()
        try:
            return _hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    ok = await _off_loop(_verify)
    return ok and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def warm_up() -> None:
    """Compute the dummy hash (on the hashing threads, like every hash) and load the
    common-password list before the first login."""

    def load() -> None:
        _dummy_hash()
        _common_passwords()

    await _off_loop(load)
