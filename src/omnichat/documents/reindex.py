"""``omnichat reindex``: rebuild every ready document's chunks and vectors with the configured
extraction, chunking and embedder (after changing ``OMNICHAT_EMBEDDER``, the vector store or
the chunk size, or after an upgrade that extracts more text). One document per transaction; run
it with the server stopped: searches meanwhile see a partly rebuilt index.

Each document is read back from its own original, checked against its SHA-256. One whose
original is unavailable (or can no longer be extracted) keeps its stored chunks, which are
re-embedded so that it stays searchable, and is named in a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select, update

from omnichat.db.base import utcnow
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.ingest import Ingestor
from omnichat.documents.models import Chunk, Document, DocumentStatus
from omnichat.errors import AppError
from omnichat.rag.index import VectorIndex
from omnichat.rag.types import VectorRecord

logger = logging.getLogger("omnichat.reindex")


@dataclass
class ReindexReport:
    rebuilt: int = 0  # re-extracted from their originals
    # document id -> why it kept its stored chunks (re-embedded only)
    kept_chunks: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.rebuilt + len(self.kept_chunks)


async def reindex(database: Database, index: VectorIndex, ingestor: Ingestor) -> ReindexReport:
    await index.store.reset(index.embedder.dimension)
    async with database.reader() as db:
        documents = (
            await db.execute(
                select(Document.id, Document.user_id, Document.filename)
                .where(Document.status == DocumentStatus.READY.value)
                .order_by(Document.created_at, Document.id)
            )
        ).all()
    report = ReindexReport()
    for number, (document_id, user_id, filename) in enumerate(documents, start=1):
        try:
            await ingestor.rebuild(document_id)
            report.rebuilt += 1
        except AppError as error:
            await _reembed_stored_chunks(database, index, document_id, user_id)
            report.kept_chunks[document_id] = error.detail
            logger.warning(
                "kept the stored chunks of a document that could not be extracted again",
                extra={"document_id": document_id, "file": filename, "reason": error.detail},
            )
        logger.info("reindexed", extra={"document_id": document_id, "done": number})
    await index.record_rebuilt()
    return report


async def _reembed_stored_chunks(
    database: Database, index: VectorIndex, document_id: str, user_id: str
) -> None:
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
