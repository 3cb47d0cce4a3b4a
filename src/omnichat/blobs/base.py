"""The ``BlobStore`` protocol: originals of uploaded documents, under server-made keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol


class BlobNotFound(LookupError):
    pass


class BlobStore(Protocol):
    """Keys are made by the server (``[A-Za-z0-9/_-]``, never a client's filename)."""

    async def put_file(self, key: str, source: Path) -> None:
        """Store the file at ``source`` under ``key``, atomically (readers never see a part)."""
        ...

    async def read(self, key: str) -> bytes:
        """The whole blob. Raises ``BlobNotFound``."""
        ...

    def stream(self, key: str, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The blob in pieces, for downloads. Raises ``BlobNotFound`` before the first piece."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing key is not an error."""
        ...
