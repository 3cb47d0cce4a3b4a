"""Password hashing runs on its own small thread pool (see ``omnichat.auth.passwords``)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from omnichat.auth import passwords


async def test_hashing_and_verifying_run_on_the_few_hashing_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: set[str] = set()
    real = passwords._hasher

    class RecordingHasher:
        def hash(self, password: str) -> str:
            seen.add(threading.current_thread().name)
            return real.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            seen.add(threading.current_thread().name)
            return real.verify(stored, password)

    monkeypatch.setattr(passwords, "_hasher", RecordingHasher())
    stored = await passwords.hash_password("a long enough passphrase")
    results = await asyncio.gather(
        *(passwords.verify_password(stored, "a long enough passphrase") for _ in range(12)),
        passwords.verify_password(None, "anything at all"),
    )
    assert results == [True] * 12 + [False]
    assert seen
    assert all(name.startswith("omnichat-argon2") for name in seen), seen
    assert len(seen) <= passwords._HASHING._max_workers
