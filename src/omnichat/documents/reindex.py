"""``omnichat reindex``: rebuild every vector with the configured embedder (after changing
``OMNICHAT_EMBEDDER`` or the vector store). Chunks are kept; only their vectors are remade,
one document per transaction. Run it with the server stopped: searches meanwhile see a
partly rebuilt index."""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from omnichat.db.base import utcnow
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import Chunk, Document, DocumentStatus
from omnichat.rag.index import VectorIndex
from omnichat.rag.types import VectorRecord

logger = logging.getLogger("omnichat.reindex")


async def reindex(database: Database, index: VectorIndex) -> int:
    """Returns the number of documents re-embedded."""
    await index.store.reset(index.embedder.dimension)
    async with database.reader() as db:
        documents = (
            await db.execute(
                select(Document.id, Document.user_id)
                .where(Document.status == DocumentStatus.READY.value)
                .order_by(Document.created_at)
            )
        ).all()
    for number, (document_id, user_id) in enumerate(documents, start=1):
        async with database.reader() as db:
            chunks = (
                await db.execute(
                    select(Chunk.id, Chunk.text)
                    .where(Chunk.document_id == document_id)
                    .order_by(Chunk.ordinal)
                )
            ).all()
        vectors = await index.embedder.embed_documents([text for _, text in chunks])
        async with unit_of_work(database.writer) as db:
            await index.store.upsert(
                db,
                user_id,
                [
                    VectorRecord(chunk_id, document_id, vector)
                    for (chunk_id, _), vector in zip(chunks, vectors, strict=True)
                ],
            )
            await db.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(embedder=index.embedder.name, updated_at=utcnow())
            )
        logger.info("reindexed", extra={"document_id": document_id, "done": number})
    await index.record_rebuilt()
    return len(documents)
