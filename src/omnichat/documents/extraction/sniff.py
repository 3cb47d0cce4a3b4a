"""What a file really is, from its bytes: never from its name or the client's Content-Type.

In order: ``%PDF-`` is a PDF; a ZIP archive is DOCX, PPTX or XLSX by its main part's content
type (``ooxml``), any other ZIP is refused; then the first ``TEXT_SAMPLE_BYTES`` must decode as
text (``text``'s encoding rule), or the file is refused; text whose markup starts a document
(``html.looks_like_html``) is HTML; otherwise the client's file name picks a flavour of text:
``.csv``/``.tsv`` when it reads as a table (``csv.table_delimiter``), ``.md``/``.markdown``;
anything else is plain text.
"""

from __future__ import annotations

from pathlib import Path

from omnichat.documents.extraction.csv import is_table_name, table_delimiter
from omnichat.documents.extraction.errors import EmptyDocument, UnsupportedDocumentType
from omnichat.documents.extraction.html import declared_charset, looks_like_html
from omnichat.documents.extraction.ooxml import office_kind
from omnichat.documents.extraction.text import (
    NOT_TEXT_DETAIL,
    TEXT_SAMPLE_BYTES,
    read_sample,
    sample_text,
)
from omnichat.rag.types import DocumentKind

__all__ = ["TEXT_SAMPLE_BYTES", "sniff_kind"]

PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
MARKDOWN_SUFFIXES = (".md", ".markdown")


def sniff_kind(path: Path, filename: str | None = None) -> DocumentKind:
    """The document's kind. ``filename`` only picks CSV or Markdown over plain text for a
    file that is text anyway. Blocking: run it in a thread."""
    head, complete = read_sample(path)
    if not head:
        raise EmptyDocument
    if head.startswith(PDF_MAGIC):
        return DocumentKind.PDF
    if head.startswith(ZIP_MAGIC):
        return office_kind(path)
    sample = sample_text(head, complete=complete, declared=declared_charset(head))
    if sample is None:
        raise UnsupportedDocumentType(NOT_TEXT_DETAIL)
    if looks_like_html(sample):
        return DocumentKind.HTML
    name = (filename or "").lower()
    if is_table_name(name) and table_delimiter(sample, complete=complete) is not None:
        return DocumentKind.CSV
    if name.endswith(MARKDOWN_SUFFIXES):
        return DocumentKind.MARKDOWN
    return DocumentKind.TEXT
