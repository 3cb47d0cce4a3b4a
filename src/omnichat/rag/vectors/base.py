"""The ``VectorStore`` protocol. Every method is scoped to one user: the owner filter is part of
the query (a partition key, a WHERE clause or a namespace), never applied to results afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.rag.types import VectorHit, VectorRecord


class VectorStore(Protocol):
    """Stores in the app's database write inside ``session``'s transaction, so chunks, vectors and
    the document's ``ready`` status commit together; an external store (Pinecone) ignores the
    session and retrieval keeps only hits whose chunk belongs to a ready document."""

    name: str

    async def prepare(self, dimension: int) -> None:
        """Create the index for vectors of ``dimension`` if it does not exist (idempotent)."""
        ...

    async def upsert(
        self, session: AsyncSession, user_id: str, records: Sequence[VectorRecord]
    ) -> None: ...

    async def search(
        self, session: AsyncSession, user_id: str, vector: Sequence[float], limit: int
    ) -> list[VectorHit]: ...

    async def delete(self, session: AsyncSession, user_id: str, chunk_ids: Sequence[int]) -> None:
        """Remove these chunks' vectors; ids that are not there are ignored."""
        ...

    async def delete_user(self, session: AsyncSession, user_id: str) -> None:
        """Remove every vector of the user (account deletion): in ``session``'s transaction for
        a store in the app's database, once it has committed for an external one."""
        ...

    async def reset(self, dimension: int) -> None:
        """Drop every vector and recreate the index for ``dimension`` (``omnichat reindex``)."""
        ...
