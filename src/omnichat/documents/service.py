"""Documents: upload (checked, stored, indexed), list, get, delete, download. Every lookup is
scoped to the owner; another user's document id is a 404 like a missing one.

An upload is parsed before anything is stored, so a file that cannot be used (wrong type,
encrypted, corrupt, no text) is refused with a 4xx and leaves nothing behind. Then the original
goes to the blob store and the document row is written (``processing``); indexing follows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omnichat.blobs.base import BlobStore
from omnichat.chats.service import ChatService
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import after_commit, unit_of_work
from omnichat.documents.extraction import DocumentTooComplex
from omnichat.documents.ingest import Claim, Ingestor
from omnichat.documents.models import Chunk, Document, DocumentStatus, original_key
from omnichat.documents.originals import stream_original
from omnichat.errors import AppError, Conflict, NotFound, PayloadTooLarge
from omnichat.ids import new_id
from omnichat.private_files import make_private_dirs, open_private
from omnichat.rag.index import VectorIndex
from omnichat.rag.types import ExtractedDocument
from omnichat.ratelimit import RateWindow, TooManyRequests

logger = logging.getLogger("omnichat.documents")
DOCUMENT_NOT_FOUND = "Document not found"
TOO_MANY_FAILED_UPLOADS = "Too many of your uploads were refused after costly reading"
# A refusal of any kind (no text, too large, corrupt) that kept a parser worker this long
# counts toward the failed-upload window like a "too complex" one: slow refusals are not free.
EXPENSIVE_REFUSAL_S = 5.0
MAX_FILENAME_CHARS = 200
COPY_CHUNK_BYTES = 1024 * 1024
_MULTIPART_ESCAPES = (("%22", '"'), ("%0D", "\r"), ("%0A", "\n"))


@dataclass(frozen=True)
class DocumentLimits:
    max_upload_bytes: int
    max_documents_per_user: int
    max_bytes_per_user: int


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    size: int
    sha256: str


def display_filename(raw: str | None, kind: str) -> str:
    """The client's name, made safe to show and to put in a Content-Disposition header: last
    path component only, no control characters, no quotes, bounded length."""
    name = raw or ""
    # Browsers (and httpx) escape these three in multipart filenames (HTML5 form encoding).
    for escaped, character in _MULTIPART_ESCAPES:
        name = name.replace(escaped, character)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in "\"'")
    name = name.strip().strip(".") or f"document.{kind}"
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and len(extension) <= 10:
            return stem[: MAX_FILENAME_CHARS - len(extension) - 1] + "." + extension
        return name[:MAX_FILENAME_CHARS]
    return name


class DocumentService:
    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        ingestor: Ingestor,
        index: VectorIndex,
        chats: ChatService,
        limits: DocumentLimits,
        scratch_dir: Path,
        failed_uploads: RateWindow,
    ) -> None:
        self._database = database
        self._blobs = blobs
        self.ingestor = ingestor
        self._index = index
        self._chats = chats
        self._limits = limits
        self._scratch_dir = scratch_dir
        self._failed_uploads = failed_uploads

    # -- upload -------------------------------------------------------------------------------

    async def upload(
        self, user_id: str, source: BinaryIO, filename: str | None, session_id: str | None
    ) -> tuple[Document, asyncio.Task[AppError | None]]:
        """Checks, stores and starts indexing; the task finishes when the document is ready or
        failed."""
        self._index.check_usable()
        make_private_dirs(self._scratch_dir)
        with tempfile.TemporaryDirectory(dir=self._scratch_dir) as folder:
            upload = await asyncio.to_thread(
                _copy_limited, source, Path(folder) / "upload", self._limits.max_upload_bytes
            )
            async with self._database.reader() as db:
                if session_id is not None:
                    await self._chats.get_session(db, user_id, session_id)
                await self._check_quota(db, user_id, upload.size)
            extracted = await self._extract(upload.path, filename, user_id)
            document_id = new_id()
            document = Document(
                id=document_id,
                user_id=user_id,
                session_id=session_id,
                filename=display_filename(filename, extracted.kind.value),
                kind=extracted.kind.value,
                size_bytes=upload.size,
                sha256=upload.sha256,
                blob_key=original_key(user_id, document_id),
                status=DocumentStatus.PROCESSING.value,
                pages=extracted.page_count,
                attempts=0,  # counted when indexing starts
            )
            await self._blobs.put_file(document.blob_key, upload.path)
        try:
            async with unit_of_work(self._database.writer) as db:
                # Again under the write lock: concurrent uploads must not pass the quota together.
                await self._check_quota(db, user_id, upload.size)
                if session_id is not None:
                    await self._chats.get_session(db, user_id, session_id)
                db.add(document)
        except BaseException:
            await self._blobs.delete(document.blob_key)
            raise
        task = self.ingestor.start(Claim(document.id, user_id, 0), extracted)
        return document, task

    async def _extract(self, path: Path, filename: str | None, user_id: str) -> ExtractedDocument:
        """The upload's text. A file refused as too complex to index, or refused for any reason
        after more than ``EXPENSIVE_REFUSAL_S`` of reading, counts against the user's
        ``failed_uploads`` window: past it, 429, so that a refused bomb cannot be sent again and
        again for free."""
        wait_s = await self._failed_uploads.wait_time(user_id)
        if wait_s is not None:
            raise TooManyRequests.after(wait_s, TOO_MANY_FAILED_UPLOADS)
        started = time.monotonic()
        try:
            return await self.ingestor.extractor.extract(path, filename, user_id)
        except DocumentTooComplex:
            await self._failed_uploads.hit(user_id)
            raise
        except AppError:
            if time.monotonic() - started > EXPENSIVE_REFUSAL_S:
                await self._failed_uploads.hit(user_id)
            raise

    async def _check_quota(self, db: AsyncSession, user_id: str, incoming: int) -> None:
        count, total = (
            await db.execute(
                select(
                    func.count(Document.id), func.coalesce(func.sum(Document.size_bytes), 0)
                ).where(Document.user_id == user_id)
            )
        ).one()
        if count >= self._limits.max_documents_per_user:
            raise Conflict(
                f"Document limit reached ({self._limits.max_documents_per_user}); "
                "delete some documents first"
            )
        if total + incoming > self._limits.max_bytes_per_user:
            raise PayloadTooLarge(
                f"Storage quota exceeded ({self._limits.max_bytes_per_user} bytes per user); "
                "delete some documents first"
            )

    # -- reading ------------------------------------------------------------------------------

    async def list_documents(self, user_id: str, *, limit: int, offset: int) -> list[Document]:
        async with self._database.reader() as db:
            rows = await db.scalars(
                select(Document)
                .where(Document.user_id == user_id)
                .order_by(Document.created_at.desc(), Document.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(rows)

    async def get_document(self, user_id: str, document_id: str) -> Document:
        async with self._database.reader() as db:
            return await _owned(db, user_id, document_id)

    async def open_original(
        self, user_id: str, document_id: str
    ) -> tuple[Document, AsyncIterator[bytes]]:
        """The document and its original's bytes, checked against its SHA-256 as they go
        (``stream_original``): one document's bytes are never served for another."""
        document = await self.get_document(user_id, document_id)
        return document, stream_original(self._blobs, document)

    # -- delete -------------------------------------------------------------------------------

    async def check_originals_deletable(self) -> None:
        """``BlobStoreUnavailable`` (503) when the originals' store does not answer: a delete
        then refuses before it removes anything, rather than leave originals nobody refers to
        (and nobody would delete) in the store."""
        await self._blobs.check()

    async def delete_document(self, user_id: str, document_id: str) -> None:
        """Chunks, vectors and the row in one transaction, then the original; 503 with nothing
        deleted when the originals' store does not answer."""
        document = await self.get_document(user_id, document_id)
        await self.check_originals_deletable()
        await self.ingestor.cancel(document_id)
        async with unit_of_work(self._database.writer) as db:
            chunk_ids = list(
                await db.scalars(select(Chunk.id).where(Chunk.document_id == document_id))
            )
            await self._index.store.delete(db, user_id, chunk_ids)
            await db.execute(delete(Chunk).where(Chunk.document_id == document_id))
            # A statement, not the ORM's delete of a loaded row: of two concurrent deletes the
            # second matches nothing, a 404 (the ORM raised StaleDataError, a 500).
            deleted = await db.execute(
                delete(Document).where(Document.id == document_id, Document.user_id == user_id)
            )
            if deleted.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFound(DOCUMENT_NOT_FOUND)
        try:
            await self._blobs.delete(document.blob_key)
        except Exception:
            # The row is gone, so nothing refers to the original any more; log for cleanup.
            logger.exception(
                "deleting a document's original failed", extra={"key": document.blob_key}
            )

    async def stop_indexing_all(self, user_id: str) -> None:
        """Stops every indexing task of the user's documents (before deleting them all: a task
        must not be waited for while its caller holds the write lock it needs)."""
        async with self._database.reader() as db:
            processing = await db.scalars(
                select(Document.id).where(
                    Document.user_id == user_id,
                    Document.status == DocumentStatus.PROCESSING.value,
                )
            )
            document_ids = list(processing)
        for document_id in document_ids:
            await self.ingestor.cancel(document_id)

    async def delete_all(self, db: AsyncSession, user_id: str) -> int:
        """Every document of the user, its chunks and vectors, in ``db``'s transaction; their
        originals are deleted once it has committed. Returns how many documents."""
        blob_keys = list(
            await db.scalars(select(Document.blob_key).where(Document.user_id == user_id))
        )
        await self._index.store.delete_user(db, user_id)
        await db.execute(delete(Chunk).where(Chunk.user_id == user_id))
        await db.execute(delete(Document).where(Document.user_id == user_id))

        async def delete_originals() -> None:
            for key in blob_keys:
                try:
                    await self._blobs.delete(key)
                except Exception:
                    logger.exception("deleting a document's original failed", extra={"key": key})

        after_commit(db, delete_originals)
        return len(blob_keys)


async def _owned(db: AsyncSession, user_id: str, document_id: str) -> Document:
    """The caller's document; another user's id is a 404 like a missing one."""
    document = await db.scalar(
        select(Document).where(Document.id == document_id, Document.user_id == user_id)
    )
    if document is None:
        raise NotFound(DOCUMENT_NOT_FOUND)
    return document


def _copy_limited(source: BinaryIO, target: Path, max_bytes: int) -> StoredUpload:
    digest = hashlib.sha256()
    size = 0
    source.seek(0)
    with open_private(target) as out:
        while block := source.read(COPY_CHUNK_BYTES):
            size += len(block)
            if size > max_bytes:
                raise PayloadTooLarge(f"The file exceeds the upload limit of {max_bytes} bytes")
            digest.update(block)
            out.write(block)
    return StoredUpload(target, size, digest.hexdigest())
