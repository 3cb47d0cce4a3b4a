"""Indexing a stored document: chunk, embed, then one transaction that writes the chunks, their
vectors and the ``ready`` status together, so a search never sees half a document.

Crash-safe by construction: until that transaction commits the document is ``processing`` and
its original is in the blob store, so a restart simply indexes it again (``resume``). Each run
claims the document by bumping ``attempts`` when it starts (waiting for a turn is no attempt);
the final write commits only if the claim is still the latest, so two workers that both pick
it up cannot both write chunks.

Fair: documents take turns per user (one of a user's at a time), and so does every stage
inside: parsing and OCR in the sandbox pools, embedding batches on the document lane.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Update, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.blobs.base import BlobStore
from omnichat.db.base import utcnow
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.extraction import Extractor
from omnichat.documents.models import Chunk, Document, DocumentStatus
from omnichat.documents.originals import read_original
from omnichat.errors import AppError, BadGateway, InvalidInput, NotFound, ServiceUnavailable
from omnichat.fairness import FairSlots
from omnichat.llm.errors import ProviderError
from omnichat.private_files import make_private_dirs, write_private_bytes
from omnichat.rag.chunking import Chunker
from omnichat.rag.fair_embedding import FairDocumentEmbedding
from omnichat.rag.index import VectorIndex
from omnichat.rag.types import ChunkDraft, ExtractedDocument, VectorRecord

logger = logging.getLogger("omnichat.documents")
MAX_ATTEMPTS = 3
INTERNAL_FAILURE = "Internal error while indexing the document"
DELETED_WHILE_INDEXING = "The document was deleted while it was being indexed"
INTERRUPTED_TOO_OFTEN = "Indexing was interrupted too many times"


class _DocumentGone(Exception):
    """Deleted while it was being indexed: nothing left to do."""


@dataclass(eq=False)
class _Job:
    """One document's indexing task. ``started``: its first step has run (a task cancelled
    before that never runs its body); ``deleted``: the document is being deleted, and the task
    ends with ``NotFound`` (a result, never a cancelled task a waiting upload would trip on)."""

    task: asyncio.Task[AppError | None] | None = None
    started: bool = False
    deleted: bool = False


@dataclass(frozen=True)
class Claim:
    document_id: str
    user_id: str
    attempt: int


def _still_claimed(claim: Claim) -> Update:
    """An UPDATE of the document that matches only while this run's claim is the latest."""
    return update(Document).where(
        Document.id == claim.document_id,
        Document.status == DocumentStatus.PROCESSING.value,
        Document.attempts == claim.attempt,
    )


class Ingestor:
    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        extractor: Extractor,
        chunker: Chunker,
        index: VectorIndex,
        embedding: FairDocumentEmbedding,
        *,
        scratch_dir: Path,
        max_concurrent: int = 4,
    ) -> None:
        self._database = database
        self._blobs = blobs
        self.extractor = extractor
        self.chunker = chunker
        self._index = index
        self._embedding = embedding
        self._scratch_dir = scratch_dir
        # Documents indexed at once: at most ``max_concurrent``, one per user at a time, users
        # served in turn (each stage inside takes turns per user too: parsing, OCR, embedding).
        self._slots = FairSlots(max_concurrent, per_owner=1)
        self._jobs: dict[str, _Job] = {}

    def start(
        self, queued: Claim, extracted: ExtractedDocument | None = None
    ) -> asyncio.Task[AppError | None]:
        """Index in the background; ``queued`` names the document and the attempts it has
        had, ``extracted`` saves parsing the original again. The work waits for the owner's
        turn (``FairSlots``); only when it starts is it claimed, which counts an attempt. The
        task's result is the error to show a client waiting for the outcome, None when it is
        ready; it is cancelled only by a shutdown (the document then resumes at the next
        start)."""
        job = _Job()
        task = job.task = asyncio.create_task(self._run(queued, extracted, job))
        self._jobs[queued.document_id] = job
        task.add_done_callback(lambda _: self._jobs.pop(queued.document_id, None))
        return task

    async def cancel(self, document_id: str) -> None:
        """The document is being deleted: its indexing stops now (returns once it has)."""
        job = self._jobs.get(document_id)
        if job is None or job.task is None:
            return
        job.deleted = True
        if job.started:
            job.task.cancel()
        await asyncio.wait([job.task])

    async def shutdown(self) -> None:
        """Stop indexing; those documents stay ``processing`` and resume at the next start."""
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resume(self) -> int:
        """Index again every document a stopped or crashed process left ``processing``."""
        async with self._database.reader() as db:
            rows = (
                await db.execute(
                    select(Document.id, Document.user_id, Document.attempts)
                    .where(Document.status == DocumentStatus.PROCESSING.value)
                    .order_by(Document.created_at, Document.id)
                )
            ).all()
        resumed = 0
        for document_id, user_id, attempts in rows:
            if document_id not in self._jobs:
                self.start(Claim(document_id, user_id, attempts))
                resumed += 1
        return resumed

    async def _claim(self, document_id: str, user_id: str, seen_attempts: int) -> Claim | None:
        latest = Claim(document_id, user_id, seen_attempts)
        async with unit_of_work(self._database.writer) as db:
            result = await db.execute(
                _still_claimed(latest).values(attempts=seen_attempts + 1, updated_at=utcnow())
            )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None  # someone else claimed it, or it finished or was deleted meanwhile
        return Claim(document_id, user_id, seen_attempts + 1)

    async def _run(
        self, queued: Claim, extracted: ExtractedDocument | None, job: _Job
    ) -> AppError | None:
        job.started = True
        try:
            if job.deleted:
                return NotFound(DELETED_WHILE_INDEXING)
            async with self._slots.slot(queued.user_id):
                claim = await self._claim(queued.document_id, queued.user_id, queued.attempt)
                if claim is None:  # deleted meanwhile, or another process has it
                    return NotFound(DELETED_WHILE_INDEXING) if await self._gone(queued) else None
                if claim.attempt > MAX_ATTEMPTS:
                    failure = ServiceUnavailable(INTERRUPTED_TOO_OFTEN)
                    await self._fail(claim, failure.detail)
                    return failure
                return await self._index_document(claim, extracted)
        except asyncio.CancelledError:
            if job.deleted:
                return NotFound(DELETED_WHILE_INDEXING)
            raise  # shutting down

    async def _gone(self, document: Claim) -> bool:
        async with self._database.reader() as db:
            return await db.get(Document, document.document_id) is None

    async def _index_document(
        self, claim: Claim, extracted: ExtractedDocument | None
    ) -> AppError | None:
        try:
            self._index.check_usable()
            if extracted is None or extracted.ocr_pages:
                extracted = await self._extract_original(claim, extracted)
            drafts, vectors = await self._chunks_and_vectors(claim.user_id, extracted)
            await self._commit(claim, extracted, drafts, vectors)
            return None
        except _DocumentGone:
            return NotFound(DELETED_WHILE_INDEXING)
        except AppError as error:
            failure = error
        except ProviderError as error:
            failure = BadGateway(f"Embedding failed: {error.client_message}")
        except Exception:
            logger.exception("indexing failed", extra={"document_id": claim.document_id})
            failure = ServiceUnavailable(INTERNAL_FAILURE)
        await self._fail(claim, failure.detail)
        return failure

    async def _chunks_and_vectors(
        self, user_id: str, extracted: ExtractedDocument
    ) -> tuple[list[ChunkDraft], list[list[float]]]:
        """The document's chunks and their embeddings, on ``user_id``'s turn. Raises
        ``InvalidInput`` when there is no text, the chunker's ``PayloadTooLarge`` and the
        embedder's ``ProviderError``."""
        drafts = await self.extractor.chunk(extracted, user_id, self.chunker.config)
        if not drafts:
            raise InvalidInput("The document has no text to index")
        vectors = await self._embedding.embed_documents_for(user_id, [d.text for d in drafts])
        return drafts, vectors

    async def _extract_original(
        self, claim: Claim, parsed: ExtractedDocument | None
    ) -> ExtractedDocument:
        async with self._database.reader() as db:
            document = await db.get(Document, claim.document_id)
        if document is None:
            raise _DocumentGone
        return await self._extract(document, parsed)

    async def _extract(
        self, document: Document, parsed: ExtractedDocument | None = None
    ) -> ExtractedDocument:
        """The text of the document's own original (``OriginalUnavailable`` when it has none):
        parsed (unless ``parsed`` is given), then its scanned pages read by OCR."""
        data = await read_original(self._blobs, document)
        make_private_dirs(self._scratch_dir)
        with tempfile.TemporaryDirectory(dir=self._scratch_dir) as folder:
            path = Path(folder) / "original"
            await asyncio.to_thread(write_private_bytes, path, data)
            if parsed is None:
                parsed = await self.extractor.extract(path, document.filename, document.user_id)
            return await self.extractor.read_scanned_pages(path, parsed, document.user_id)

    async def rebuild(self, document_id: str) -> int:
        """Indexes a ready document again from its original (``omnichat reindex``): extract,
        chunk and embed, then replace its chunks and vectors in one transaction. Returns the
        new chunk count (0 when the document was deleted or left ``ready`` meanwhile). Raises
        ``OriginalUnavailable``, the extraction's ``AppError``s and ``ProviderError``."""
        async with self._database.reader() as db:
            document = await db.get(Document, document_id)
        if document is None or document.status != DocumentStatus.READY.value:
            return 0
        extracted = await self._extract(document)
        drafts, vectors = await self._chunks_and_vectors(document.user_id, extracted)
        async with unit_of_work(self._database.writer) as db:
            updated = await db.execute(
                update(Document)
                .where(Document.id == document_id, Document.status == DocumentStatus.READY.value)
                .values(
                    pages=extracted.page_count,
                    unread_pages=list(extracted.unread_pages) or None,
                    chunk_count=len(drafts),
                    embedder=self._index.embedder.name,
                    updated_at=utcnow(),
                )
            )
            if updated.rowcount != 1:  # type: ignore[attr-defined]
                return 0
            await self._replace_chunks(db, document_id, document.user_id, drafts, vectors)
        return len(drafts)

    async def _commit(
        self,
        claim: Claim,
        extracted: ExtractedDocument,
        drafts: Sequence[ChunkDraft],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        async with unit_of_work(self._database.writer) as db:
            claimed = await db.execute(
                _still_claimed(claim).values(
                    status=DocumentStatus.READY.value,
                    pages=extracted.page_count,
                    unread_pages=list(extracted.unread_pages) or None,
                    chunk_count=len(drafts),
                    embedder=self._index.embedder.name,
                    error=None,
                    updated_at=utcnow(),
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return  # deleted, or claimed by a newer run: that one writes
            await self._replace_chunks(db, claim.document_id, claim.user_id, drafts, vectors)

    async def _replace_chunks(
        self,
        db: AsyncSession,
        document_id: str,
        user_id: str,
        drafts: Sequence[ChunkDraft],
        vectors: Sequence[Sequence[float]],
    ) -> None:
        """The document's chunks and their vectors become these, in ``db``'s transaction."""
        # Old chunks: a rebuild's, or (never, but a store that reuses ids must not see stale
        # rows) a crashed earlier attempt's.
        old_ids = list(await db.scalars(select(Chunk.id).where(Chunk.document_id == document_id)))
        if old_ids:
            await self._index.store.delete(db, user_id, old_ids)
            await db.execute(delete(Chunk).where(Chunk.document_id == document_id))
        chunk_ids = (
            await db.scalars(
                insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
                [
                    {
                        "document_id": document_id,
                        "user_id": user_id,
                        "ordinal": draft.ordinal,
                        "page": draft.page,
                        "text": draft.text,
                        "token_count": draft.token_count,
                    }
                    for draft in drafts
                ],
            )
        ).all()
        await self._index.store.upsert(
            db,
            user_id,
            [
                VectorRecord(chunk_id, document_id, vector)
                for chunk_id, vector in zip(chunk_ids, vectors, strict=True)
            ],
        )

    async def _fail(self, claim: Claim, reason: str) -> None:
        async with unit_of_work(self._database.writer) as db:
            await db.execute(
                _still_claimed(claim).values(
                    status=DocumentStatus.FAILED.value, error=reason[:1000], updated_at=utcnow()
                )
            )
