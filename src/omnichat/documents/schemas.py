from __future__ import annotations

from pydantic import BaseModel

from omnichat.documents.models import Document
from omnichat.schemas import UTCTimestamp


class DocumentOut(BaseModel):
    id: str
    filename: str
    kind: str
    size_bytes: int
    status: str  # processing, ready or failed
    error: str | None
    pages: int | None
    # Pages that yielded no text: scanned pages OCR could not read (or over its limits).
    pages_without_text: list[int]
    chunks: int
    session_id: str | None
    # False when the stored original is not this document's own (download answers 410).
    original_available: bool
    created_at: UTCTimestamp
    updated_at: UTCTimestamp

    @classmethod
    def of(cls, document: Document) -> DocumentOut:
        return cls(
            id=document.id,
            filename=document.filename,
            kind=document.kind,
            size_bytes=document.size_bytes,
            status=document.status,
            error=document.error,
            pages=document.pages,
            pages_without_text=document.unread_pages or [],
            chunks=document.chunk_count,
            session_id=document.session_id,
            original_available=document.has_original,
            created_at=document.created_at,
            updated_at=document.updated_at,
        )
