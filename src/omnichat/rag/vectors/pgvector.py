"""pgvector on PostgreSQL: one table of embeddings beside ``chunks``, with an HNSW index.

Every query carries ``user_id = :user``. An HNSW scan filters after it walks the graph, so for a
user who holds a small share of all vectors it can come back short; a user with up to
``EXACT_SEARCH_MAX`` vectors is searched exactly (their rows first, then distances), which is
also faster at that size. Above it the HNSW index is used with a wide candidate list.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.rag.types import VectorHit, VectorRecord

EXACT_SEARCH_MAX = 50_000
HNSW_EF_SEARCH = 400


def _literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(format(float(value), ".7g") for value in vector) + "]"


def _create_statements(dimension: int) -> list[str]:
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        "CREATE TABLE IF NOT EXISTS chunk_embeddings ("
        "chunk_id integer PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, "
        "user_id varchar(36) NOT NULL, "
        f"embedding vector({int(dimension)}) NOT NULL)",
        "CREATE INDEX IF NOT EXISTS ix_chunk_embeddings_user ON chunk_embeddings (user_id)",
        "CREATE INDEX IF NOT EXISTS ix_chunk_embeddings_hnsw ON chunk_embeddings "
        "USING hnsw (embedding vector_cosine_ops)",
    ]


class PgVectorStore:
    name = "pgvector"

    def __init__(self, database: Database) -> None:
        self._database = database

    async def prepare(self, dimension: int) -> None:
        async with unit_of_work(self._database.writer) as db:
            # Two servers starting at once must not both create the extension/table.
            await db.execute(text("SELECT pg_advisory_xact_lock(7263550001)"))
            for statement in _create_statements(dimension):
                await db.execute(text(statement))

    async def reset(self, dimension: int) -> None:
        async with unit_of_work(self._database.writer) as db:
            await db.execute(text("SELECT pg_advisory_xact_lock(7263550001)"))
            await db.execute(text("DROP TABLE IF EXISTS chunk_embeddings"))
            for statement in _create_statements(dimension):
                await db.execute(text(statement))

    async def upsert(
        self, session: AsyncSession, user_id: str, records: Sequence[VectorRecord]
    ) -> None:
        if not records:
            return
        await session.execute(
            text(
                "INSERT INTO chunk_embeddings(chunk_id, user_id, embedding) "
                "VALUES (:id, :user, CAST(:vector AS vector)) "
                "ON CONFLICT (chunk_id) DO UPDATE SET embedding = excluded.embedding"
            ),
            [
                {"id": record.chunk_id, "user": user_id, "vector": _literal(record.vector)}
                for record in records
            ],
        )

    async def search(
        self, session: AsyncSession, user_id: str, vector: Sequence[float], limit: int
    ) -> list[VectorHit]:
        params = {"vector": _literal(vector), "limit": limit, "user": user_id}
        count = await session.scalar(
            text("SELECT count(*) FROM chunk_embeddings WHERE user_id = :user"), {"user": user_id}
        )
        if int(count or 0) <= EXACT_SEARCH_MAX:
            query = (
                "WITH mine AS MATERIALIZED (SELECT chunk_id, embedding FROM chunk_embeddings "
                "WHERE user_id = :user) "
                "SELECT chunk_id, embedding <=> CAST(:vector AS vector) AS distance FROM mine "
                "ORDER BY distance LIMIT :limit"
            )
        else:
            await session.execute(text(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}"))
            query = (
                "SELECT chunk_id, embedding <=> CAST(:vector AS vector) AS distance "
                "FROM chunk_embeddings WHERE user_id = :user ORDER BY distance LIMIT :limit"
            )
        rows = await session.execute(text(query), params)
        return [VectorHit(int(chunk_id), 1.0 - float(distance)) for chunk_id, distance in rows]

    async def delete(self, session: AsyncSession, user_id: str, chunk_ids: Sequence[int]) -> None:
        if chunk_ids:
            await session.execute(
                text("DELETE FROM chunk_embeddings WHERE user_id = :user AND chunk_id = ANY(:ids)"),
                {"user": user_id, "ids": list(chunk_ids)},
            )

    async def delete_user(self, session: AsyncSession, user_id: str) -> None:
        await session.execute(
            text("DELETE FROM chunk_embeddings WHERE user_id = :user"), {"user": user_id}
        )
