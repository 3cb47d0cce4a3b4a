"""Blob keys: server-made, so anything outside the expected shape is a bug and is refused."""

from __future__ import annotations

import re

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_-]{0,200}")


def check_key(key: str) -> str:
    """``key`` if it is a safe relative path (no ``..``, no empty segment), else ``ValueError``."""
    if (
        not isinstance(key, str)
        or not _KEY.fullmatch(key)
        or ".." in key
        or "//" in key
        or key.endswith("/")
    ):
        raise ValueError(f"invalid blob key: {key!r}")
    return key
