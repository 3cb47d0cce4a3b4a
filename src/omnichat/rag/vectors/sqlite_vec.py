"""sqlite-vec: a ``vec0`` table in the app's own SQLite file, partitioned by user.

``user_id`` is the table's partition key, so a KNN query reads only the caller's vectors (the
filter is part of the index scan, not applied to its results) and stays fast per user however
many vectors other users have.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlite_vec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.rag.types import VectorHit, VectorRecord


def _create_statement(dimension: int) -> str:
    return (
        "CREATE VIRTUAL TABLE IF NOT EXISTS chunk_vectors USING vec0("
        "chunk_id integer primary key, user_id text partition key, "
        f"embedding float[{int(dimension)}] distance_metric=cosine)"
    )


class SqliteVecStore:
    name = "sqlite-vec"

    def __init__(self, database: Database) -> None:
        self._database = database

    async def prepare(self, dimension: int) -> None:
        async with unit_of_work(self._database.writer) as db:
            await db.execute(text(_create_statement(dimension)))

    async def reset(self, dimension: int) -> None:
        async with unit_of_work(self._database.writer) as db:
            await db.execute(text("DROP TABLE IF EXISTS chunk_vectors"))
            await db.execute(text(_create_statement(dimension)))

    async def upsert(
        self, session: AsyncSession, user_id: str, records: Sequence[VectorRecord]
    ) -> None:
        if not records:
            return
        ids = [{"id": record.chunk_id} for record in records]
        # vec0 has no UPSERT: replace by deleting first.
        await session.execute(text("DELETE FROM chunk_vectors WHERE chunk_id = :id"), ids)
        await session.execute(
            text(
                "INSERT INTO chunk_vectors(chunk_id, user_id, embedding) "
                "VALUES (:id, :user, :vector)"
            ),
            [
                {
                    "id": record.chunk_id,
                    "user": user_id,
                    "vector": sqlite_vec.serialize_float32(list(record.vector)),
                }
                for record in records
            ],
        )

    async def search(
        self, session: AsyncSession, user_id: str, vector: Sequence[float], limit: int
    ) -> list[VectorHit]:
        rows = await session.execute(
            text(
                "SELECT chunk_id, distance FROM chunk_vectors "
                "WHERE embedding MATCH :vector AND k = :limit AND user_id = :user "
                "ORDER BY distance"
            ),
            {
                "vector": sqlite_vec.serialize_float32(list(vector)),
                "limit": limit,
                "user": user_id,
            },
        )
        return [VectorHit(int(chunk_id), 1.0 - float(distance)) for chunk_id, distance in rows]

    async def delete(self, session: AsyncSession, user_id: str, chunk_ids: Sequence[int]) -> None:
        if chunk_ids:
            await session.execute(
                text("DELETE FROM chunk_vectors WHERE chunk_id = :id AND user_id = :user"),
                [{"id": chunk_id, "user": user_id} for chunk_id in chunk_ids],
            )

    async def delete_user(self, session: AsyncSession, user_id: str) -> None:
        # The partition key: vec0 visits only that user's vectors.
        await session.execute(
            text("DELETE FROM chunk_vectors WHERE user_id = :user"), {"user": user_id}
        )
