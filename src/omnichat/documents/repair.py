"""``omnichat repair`` (also run by ``omnichat serve`` before it serves): settle documents
whose original is not stored under their own key.

Until migration 0006 an upload's blob key was built before the document had its id, so every
upload of a user went to one blob, ``documents/<user>/None``, each overwriting the last. For
each such shared blob, every document whose SHA-256 matches the blob's bytes gets a copy under
its own key; the others are marked ``original_available = false`` (their download answers 410;
they stay searchable; ``reindex`` keeps their chunks), and one still ``processing`` fails, since
it cannot be indexed from someone else's bytes. The shared blob is deleted once no document
refers to it. Idempotent: a second run finds nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, literal, select, update

from omnichat.blobs.base import BlobNotFound, BlobStore
from omnichat.db.base import utcnow
from omnichat.db.engine import Database
from omnichat.db.unit_of_work import unit_of_work
from omnichat.documents.models import Document, DocumentStatus, original_key
from omnichat.documents.originals import ORIGINAL_UNAVAILABLE
from omnichat.private_files import make_private_dirs, write_private_bytes

logger = logging.getLogger("omnichat.repair")


@dataclass
class RepairReport:
    moved: list[str] = field(default_factory=list)  # ids whose original now has its own key
    unavailable: list[str] = field(default_factory=list)  # ids marked original_available=false
    failed: list[str] = field(default_factory=list)  # of those, ids that were still processing


@dataclass(frozen=True)
class _Misplaced:
    id: str
    user_id: str
    sha256: str
    status: str


async def repair_originals(database: Database, blobs: BlobStore, scratch_dir: Path) -> RepairReport:
    report = RepairReport()
    own_key = literal("documents/") + Document.user_id + literal("/") + Document.id
    async with database.reader() as db:
        rows = (
            await db.execute(
                select(
                    Document.blob_key,
                    Document.id,
                    Document.user_id,
                    Document.sha256,
                    Document.status,
                ).where(Document.original_available.is_(True), Document.blob_key != own_key)
            )
        ).all()
    sharing: dict[str, list[_Misplaced]] = defaultdict(list)
    for blob_key, *document in rows:
        sharing[blob_key].append(_Misplaced(*document))
    for blob_key, documents in sharing.items():
        await _settle(database, blobs, scratch_dir, blob_key, documents, report)
    if report.moved or report.unavailable:
        logger.warning(
            "repaired documents stored under a shared original",
            extra={
                "moved": report.moved,
                "original_unavailable": report.unavailable,
                "failed": report.failed,
            },
        )
    return report


async def _settle(
    database: Database,
    blobs: BlobStore,
    scratch_dir: Path,
    blob_key: str,
    documents: list[_Misplaced],
    report: RepairReport,
) -> None:
    try:
        data: bytes | None = await blobs.read(blob_key)
    except BlobNotFound:
        data = None
    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    owners = [d for d in documents if d.sha256 == digest]
    others = [d for d in documents if d.sha256 != digest]
    if owners:
        assert data is not None
        await asyncio.to_thread(make_private_dirs, scratch_dir)
        with tempfile.TemporaryDirectory(dir=scratch_dir) as folder:
            path = Path(folder) / "original"
            await asyncio.to_thread(write_private_bytes, path, data)
            for document in owners:
                await blobs.put_file(original_key(document.user_id, document.id), path)
    async with unit_of_work(database.writer) as db:
        for document in owners:
            await db.execute(
                update(Document)
                .where(Document.id == document.id, Document.blob_key == blob_key)
                .values(blob_key=original_key(document.user_id, document.id))
            )
        for document in others:
            values: dict[str, object] = {
                "blob_key": original_key(document.user_id, document.id),
                "original_available": False,
            }
            if document.status == DocumentStatus.PROCESSING.value:
                values |= {
                    "status": DocumentStatus.FAILED.value,
                    "error": ORIGINAL_UNAVAILABLE,
                    "updated_at": utcnow(),
                }
            await db.execute(
                update(Document)
                .where(Document.id == document.id, Document.blob_key == blob_key)
                .values(**values)
            )
        still_used = await db.scalar(
            select(func.count()).select_from(Document).where(Document.blob_key == blob_key)
        )
    report.moved.extend(d.id for d in owners)
    report.unavailable.extend(d.id for d in others)
    report.failed.extend(d.id for d in others if d.status == DocumentStatus.PROCESSING.value)
    if data is not None and not still_used:
        # Nothing refers to the shared blob any more. A crash before this line leaves it
        # behind unreferenced (the documents are settled), never the other way round.
        await blobs.delete(blob_key)
