"""The ``BlobStore`` protocol: originals of uploaded documents, under server-made keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from omnichat.errors import ServiceUnavailable


class BlobNotFound(LookupError):
    pass


class BlobStoreUnavailable(ServiceUnavailable):
    """The blob store cannot be reached or refuses us (503 + Retry-After): nothing is stored."""

    detail = "The document store is unavailable"


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

    @property
    def target(self) -> str:
        """Where the blobs are, for operators (no secrets): a folder, or ``s3://bucket/prefix``."""
        ...

    async def check(self) -> None:
        """Returns when the store can be read and written; raises (the reason) otherwise."""
        ...
