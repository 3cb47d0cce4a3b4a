"""What runs inside a sandbox worker: decide a file's kind from its bytes, then read its text
with that kind's parser. All of it is blocking code on untrusted input, and it runs only in
``SandboxPool`` workers (never in the server's process).

A parser is ``(path, kind, limits) -> ExtractedDocument`` and raises the 4xx errors of
``.errors``; ``PARSERS`` maps each kind to its parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omnichat.documents.extraction.archive import ArchiveLimits
from omnichat.documents.extraction.csv import extract_csv
from omnichat.documents.extraction.docx import extract_docx
from omnichat.documents.extraction.errors import DocumentTooComplex, DocumentTooLarge
from omnichat.documents.extraction.html import extract_html
from omnichat.documents.extraction.pdf import PdfSlice, read_pdf, read_pdf_slice
from omnichat.documents.extraction.pptx import extract_pptx
from omnichat.documents.extraction.sniff import sniff_kind
from omnichat.documents.extraction.text import extract_text
from omnichat.documents.extraction.xlsx import extract_xlsx
from omnichat.rag.types import DocumentKind, ExtractedDocument

if TYPE_CHECKING:
    from omnichat.settings import Settings


@dataclass(frozen=True)
class ParseLimits:
    """What a parser may use. ``deadline_*``: the parser's own deadline, checked as it goes (a
    PDF gets ``deadline_base_s`` plus ``deadline_per_page_s`` for each page); the pool kills a
    worker that overruns its hard timeout whatever the parser does. ``pdf_slice_pages``: the
    most pages of a PDF one job reads (``parse_pdf_slice``)."""

    max_pdf_pages: int
    max_chars: int
    archive: ArchiveLimits  # DOCX, PPTX and XLSX (zip) checks before unpacking
    deadline_base_s: float = 10.0
    deadline_per_page_s: float = 0.02
    pdf_slice_pages: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        return cls(
            max_pdf_pages=settings.max_pdf_pages,
            max_chars=settings.max_extracted_chars,
            archive=ArchiveLimits(
                max_uncompressed_bytes=settings.max_docx_uncompressed_bytes,
                max_entries=settings.max_docx_entries,
                max_compression_ratio=settings.max_docx_compression_ratio,
            ),
            deadline_base_s=settings.parse_deadline_s,
            deadline_per_page_s=settings.parse_deadline_per_page_s,
            pdf_slice_pages=settings.parse_slice_pages,
        )


class Deadline:
    """``check()`` raises ``DocumentTooComplex`` once ``seconds`` have passed since creation,
    counting ``spent`` seconds as passed already (a document read in slices, one job each,
    has one deadline for all of them)."""

    def __init__(self, seconds: float, spent: float = 0.0) -> None:
        self._started = time.monotonic() - spent
        self._ends = self._started + seconds
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        """Seconds since creation, ``spent`` included."""
        return time.monotonic() - self._started

    def extend(self, seconds: float) -> None:
        self._ends += seconds
        self.seconds += seconds

    def check(self) -> None:
        if time.monotonic() > self._ends:
            raise DocumentTooComplex(f"took longer than {self.seconds:g} s to read")


Parser = Callable[[Path, DocumentKind, ParseLimits, Deadline], ExtractedDocument]


def _text(path: Path, kind: DocumentKind, limits: ParseLimits, _: Deadline) -> ExtractedDocument:
    return extract_text(path, kind)


def _docx(
    path: Path, _: DocumentKind, limits: ParseLimits, deadline: Deadline
) -> ExtractedDocument:
    return extract_docx(path, limits.archive, deadline)


def _pdf(path: Path, _: DocumentKind, limits: ParseLimits, deadline: Deadline) -> ExtractedDocument:
    return read_pdf(
        path, limits.max_pdf_pages, limits.max_chars, deadline, limits.deadline_per_page_s
    )


PARSERS: dict[DocumentKind, Parser] = {
    DocumentKind.PDF: _pdf,
    DocumentKind.DOCX: _docx,
    DocumentKind.PPTX: lambda path, _, limits, deadline: extract_pptx(
        path, limits.archive, limits.max_chars, deadline
    ),
    DocumentKind.XLSX: lambda path, _, limits, deadline: extract_xlsx(
        path, limits.archive, limits.max_chars, deadline
    ),
    DocumentKind.CSV: lambda path, _, limits, deadline: extract_csv(
        path, limits.max_chars, deadline
    ),
    DocumentKind.HTML: lambda path, _, limits, deadline: extract_html(
        path, limits.max_chars, deadline
    ),
    DocumentKind.TEXT: _text,
    DocumentKind.MARKDOWN: _text,
}


def load_parsers() -> None:
    """A sandbox worker's warm-up: nothing left to do, as loading this function imported this
    module, and with it every parser and the libraries they use."""


def parse_file(path: str, filename: str | None, limits: ParseLimits) -> ExtractedDocument:
    """The text of the file at ``path`` (``filename``, the client's, only picks a flavour of a
    kind the bytes already decided, e.g. Markdown over plain text). In a sandbox worker."""
    deadline = Deadline(limits.deadline_base_s)
    file = Path(path)
    kind = sniff_kind(file, filename)
    document = PARSERS[kind](file, kind, limits, deadline)
    if document.char_count > limits.max_chars:
        raise DocumentTooLarge(
            f"The document has {document.char_count} characters of text; "
            f"at most {limits.max_chars} are accepted"
        )
    return document


def parse_pdf_slice(
    path: str, limits: ParseLimits, first: int, chars_before: int, spent_s: float
) -> PdfSlice:
    """Pages of the PDF at ``path`` from page ``first`` on, at most ``limits.pdf_slice_pages``
    of them (``read_pdf_slice``): a job of ``Extractor.extract``, which reads a PDF slice by
    slice. ``chars_before`` and ``spent_s``: the text and the time of the slices before, which
    count toward the document's character limit and its deadline. In a sandbox worker."""
    deadline = Deadline(limits.deadline_base_s, spent=spent_s)
    return read_pdf_slice(
        Path(path),
        limits.max_pdf_pages,
        limits.max_chars,
        deadline,
        limits.deadline_per_page_s,
        first=first,
        pages_at_most=limits.pdf_slice_pages,
        chars_before=chars_before,
    )
