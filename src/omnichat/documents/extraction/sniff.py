"""What a file really is, from its bytes: never from its name or the client's Content-Type."""

from __future__ import annotations

import zipfile
from pathlib import Path

from omnichat.documents.extraction.errors import (
    ACCEPTED_TYPES,
    EmptyDocument,
    UnreadableDocument,
    UnsupportedDocumentType,
)
from omnichat.documents.extraction.text import NOT_TEXT_DETAIL, looks_like_text
from omnichat.rag.types import DocumentKind

PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
DOCX_REQUIRED_ENTRIES = frozenset({"[Content_Types].xml", "word/document.xml"})
MARKDOWN_SUFFIXES = (".md", ".markdown")
# Enough to judge whether a file is text without reading all of it.
TEXT_SAMPLE_BYTES = 64 * 1024


def sniff_kind(path: Path, filename: str | None = None) -> DocumentKind:
    """The document's kind. ``filename`` only picks Markdown over plain text for a file that
    is text anyway. Blocking: run it in a thread."""
    with path.open("rb") as handle:
        head = handle.read(TEXT_SAMPLE_BYTES)
        complete = not handle.read(1)
    if not head:
        raise EmptyDocument
    if head.startswith(PDF_MAGIC):
        return DocumentKind.PDF
    if head.startswith(ZIP_MAGIC):
        _check_is_docx(path)
        return DocumentKind.DOCX
    if looks_like_text(head, complete=complete):
        if filename and filename.lower().endswith(MARKDOWN_SUFFIXES):
            return DocumentKind.MARKDOWN
        return DocumentKind.TEXT
    raise UnsupportedDocumentType(NOT_TEXT_DETAIL)


def _check_is_docx(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableDocument(
            "The file looks like a DOCX (ZIP) archive but is corrupt or truncated"
        ) from exc
    if not names.issuperset(DOCX_REQUIRED_ENTRIES):
        raise UnsupportedDocumentType(
            f"This ZIP archive is not a Word document; upload a {ACCEPTED_TYPES} file"
        )
