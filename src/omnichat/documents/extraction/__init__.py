"""Text from uploaded documents: the type is sniffed from the bytes, then PDF, DOCX, TXT or MD
is extracted with limits on size. Failures raise the 4xx errors in ``.errors``."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omnichat.documents.extraction.docx import DocxLimits, extract_docx
from omnichat.documents.extraction.errors import (
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    NoExtractableText,
    UnreadableDocument,
    UnsafeArchive,
    UnsupportedDocumentType,
)
from omnichat.documents.extraction.pdf import PdfExtractor
from omnichat.documents.extraction.sniff import sniff_kind
from omnichat.documents.extraction.text import extract_text
from omnichat.rag.types import DocumentKind, ExtractedDocument
from omnichat.settings import Settings

__all__ = [
    "DocumentTooLarge",
    "EmptyDocument",
    "EncryptedDocument",
    "Extractor",
    "NoExtractableText",
    "UnreadableDocument",
    "UnsafeArchive",
    "UnsupportedDocumentType",
]


class Extractor:
    """One per app: it owns the PDF worker processes, so call ``close()`` on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._max_pdf_pages = settings.max_pdf_pages
        self._max_chars = settings.max_extracted_chars
        self._docx_limits = DocxLimits(
            max_uncompressed_bytes=settings.max_docx_uncompressed_bytes,
            max_entries=settings.max_docx_entries,
            max_compression_ratio=settings.max_docx_compression_ratio,
        )
        self._pdf = PdfExtractor(workers=settings.extraction_workers)

    async def extract(self, path: Path, filename: str | None = None) -> ExtractedDocument:
        """The text of the file at ``path``. ``filename`` (the client's) only tells Markdown
        from plain text; the type is decided from the content."""
        kind = await asyncio.to_thread(sniff_kind, path, filename)
        if kind is DocumentKind.PDF:
            document = await self._pdf.extract(path, self._max_pdf_pages, self._max_chars)
        elif kind is DocumentKind.DOCX:
            document = await asyncio.to_thread(extract_docx, path, self._docx_limits)
        else:
            document = await asyncio.to_thread(extract_text, path, kind)
        total_chars = sum(len(page.text) for page in document.pages)
        if total_chars > self._max_chars:
            raise DocumentTooLarge(
                f"The document has {total_chars} characters of text; "
                f"at most {self._max_chars} are accepted"
            )
        return document

    def close(self) -> None:
        """Stop the PDF workers. Blocks until they exit."""
        self._pdf.close()
