"""Vectors in a Pinecone serverless index, through the official SDK's asyncio client.

Each user's vectors live in a namespace of their own (the namespace is the user id), so every
query and delete is confined to one user by Pinecone itself. Vector ids are chunk ids; the
metadata carries the document id. Sessions are ignored: Pinecone is outside the database
transaction, and retrieval keeps only hits whose chunk belongs to a ready document.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from pinecone import AsyncPinecone
from pinecone.async_client.async_index import AsyncIndex
from pinecone.errors import (
    ApiError,
    NotFoundError,
    PineconeConnectionError,
    PineconeTimeoutError,
)
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.db.unit_of_work import after_commit
from omnichat.errors import ServiceUnavailable
from omnichat.ops.urls import masked_url
from omnichat.rag.types import VectorHit, VectorRecord
from omnichat.settings import Settings

PROVIDER = "pinecone"
VALUES_FIELD = "_values"  # the reserved field name the vectors API addresses dense values by
MAX_IDS_PER_DELETE = 1000
_MAX_VECTORS_PER_UPSERT = 1000
_UPSERT_BYTES = 1_500_000  # under the 2 MB request limit, JSON floats at ~20 bytes each


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Pinecone failing (unreachable, timing out, answering an error) as
    ``VectorStoreUnavailable`` (503 + Retry-After), naming Pinecone and the reason."""
    try:
        yield
    except ApiError as exc:
        raise VectorStoreUnavailable(f"Pinecone answered HTTP {exc.status_code}") from exc
    except PineconeTimeoutError as exc:
        raise VectorStoreUnavailable("Pinecone timed out") from exc
    except PineconeConnectionError as exc:
        raise VectorStoreUnavailable("connection to Pinecone failed") from exc


class VectorStoreUnavailable(ServiceUnavailable):
    def __init__(self, why: str) -> None:
        super().__init__(f"The vector store is unavailable ({why}); try again")


def _namespace(user_id: str) -> str:
    if not user_id:
        raise ValueError("a user id is required: the empty namespace is nobody's")
    return user_id


class PineconeVectorStore:
    name = "pinecone"

    def __init__(
        self,
        *,
        api_key: str,
        index_name: str,
        host: str | None = None,
        controller_host: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """``host``: the index's data-plane host; without it the index is looked up (and made
        if missing) by name through the control plane at ``controller_host`` (the public API
        by default)."""
        self.index_name = index_name
        self.host = host
        self._client = AsyncPinecone(api_key=api_key, host=controller_host, timeout=timeout_s)
        self._index: AsyncIndex | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> PineconeVectorStore:
        if settings.pinecone_api_key is None:
            raise ValueError("OMNICHAT_VECTOR_STORE=pinecone needs OMNICHAT_PINECONE_API_KEY")
        return cls(
            api_key=settings.pinecone_api_key.get_secret_value(),
            index_name=settings.pinecone_index,
            host=settings.pinecone_host,
            timeout_s=settings.llm_idle_timeout_s,
        )

    async def _connect(self, host: str) -> AsyncIndex:
        if self._index is not None:
            await self._index.close()
        self._index = await self._client.index(host=host)
        return self._index

    async def _data(self) -> AsyncIndex:
        """The data-plane client, made on first use (looking the host up if it is not set)."""
        if self._index is not None:
            return self._index
        async with self._lock:
            if self._index is not None:
                return self._index
            if self.host:
                return await self._connect(self.host)
            async with _translated():
                model = await self._client.indexes.describe(self.index_name)
            if not model.host:
                raise RuntimeError(f"Pinecone index '{self.index_name}' has no host yet")
            return await self._connect(model.host)

    @property
    def target(self) -> str:
        """The index, for operators (the API key is never part of it)."""
        return f"index {self.index_name}" + (f" at {masked_url(self.host)}" if self.host else "")

    async def check(self) -> None:
        """Returns when the index answers; ``VectorStoreUnavailable`` otherwise."""
        index = await self._data()
        async with _translated():
            await index.describe_index_stats()

    async def _describe_dimension(self) -> int | None:
        """The existing index's vector size, or None if there is no such index."""
        try:
            model = await self._client.indexes.describe(self.index_name)
        except NotFoundError:
            return None
        field: Any = model.schema.fields.get(VALUES_FIELD)
        return int(field.dimension) if field is not None else 0

    def _refuse(self, found: int | None, dimension: int) -> None:
        if found is not None and found != dimension:
            raise ValueError(
                f"Pinecone index '{self.index_name}' holds {found}-dimensional vectors, but the "
                f"embedder makes {dimension}-dimensional ones; use another OMNICHAT_PINECONE_INDEX "
                "or run `omnichat reindex`"
            )

    async def prepare(self, dimension: int) -> None:
        async with self._lock, _translated():
            if self.host:
                index = await self._connect(self.host)
                self._refuse((await index.describe_index_stats()).dimension, dimension)
                return
            found = await self._describe_dimension()
            self._refuse(found, dimension)
            if found is None:
                await self._create(dimension)
            model = await self._client.indexes.describe(self.index_name)
            assert model.host, "a ready index has a host"
            await self._connect(model.host)

    async def _create(self, dimension: int) -> None:
        field = {"type": "dense_vector", "dimension": dimension, "metric": "cosine"}
        try:
            # Waits until the index is ready.
            await self._client.indexes.create(
                name=self.index_name, schema={"fields": {VALUES_FIELD: field}}
            )
        except ApiError as exc:
            if exc.status_code != 409:  # made meanwhile by another process: fine
                raise

    async def reset(self, dimension: int) -> None:
        if not self.host:
            async with self._lock, _translated():
                if await self._describe_dimension() is not None:
                    await self._client.indexes.delete(self.index_name)
            await self.prepare(dimension)
            return
        # A fixed host cannot be recreated: empty every namespace instead.
        index = await self._data()
        async with _translated():
            stats = await index.describe_index_stats()
            for namespace in stats.namespaces:
                with suppress(NotFoundError):
                    await index.delete(delete_all=True, namespace=namespace)
        self._refuse(stats.dimension, dimension)

    async def upsert(
        self, session: AsyncSession, user_id: str, records: Sequence[VectorRecord]
    ) -> None:
        namespace = _namespace(user_id)
        if not records:
            return
        per_vector = len(records[0].vector) * 20 + 100
        size = max(1, min(_MAX_VECTORS_PER_UPSERT, _UPSERT_BYTES // per_vector))
        index = await self._data()
        async with _translated():
            for start in range(0, len(records), size):
                vectors = [
                    {
                        "id": str(r.chunk_id),
                        "values": [float(v) for v in r.vector],
                        "metadata": {"document_id": r.document_id},
                    }
                    for r in records[start : start + size]
                ]
                await index.upsert(vectors=vectors, namespace=namespace)

    async def search(
        self, session: AsyncSession, user_id: str, vector: Sequence[float], limit: int
    ) -> list[VectorHit]:
        namespace = _namespace(user_id)
        index = await self._data()
        async with _translated():
            response = await index.query(
                vector=[float(v) for v in vector], top_k=limit, namespace=namespace
            )
        return [VectorHit(chunk_id=int(m.id), score=float(m.score)) for m in response.matches]

    async def delete(self, session: AsyncSession, user_id: str, chunk_ids: Sequence[int]) -> None:
        namespace = _namespace(user_id)
        index = await self._data()
        async with _translated():
            for start in range(0, len(chunk_ids), MAX_IDS_PER_DELETE):
                ids = [str(i) for i in chunk_ids[start : start + MAX_IDS_PER_DELETE]]
                try:
                    await index.delete(ids=ids, namespace=namespace)
                except NotFoundError:
                    return  # the user has no namespace yet: nothing to delete

    async def delete_user(self, session: AsyncSession, user_id: str) -> None:
        """The user's namespace goes once ``session`` has committed: Pinecone is outside the
        transaction, and a rolled-back account deletion must keep its vectors."""
        namespace = _namespace(user_id)

        async def drop_namespace() -> None:
            index = await self._data()
            async with _translated():
                try:
                    await index.delete(delete_all=True, namespace=namespace)
                except NotFoundError:
                    return  # the user never had a vector

        after_commit(session, drop_namespace)

    async def close(self) -> None:
        if self._index is not None:
            await self._index.close()
            self._index = None
        await self._client.close()
