"""PDF text, page by page, with PDFium. Runs in a sandbox worker (PDFium is not thread-safe,
and a crash or a runaway file in it must not touch the server). Pages without a text layer
that carry images are left for OCR (``ocr_pages``). A page's sticky notes and text boxes
(annotations, which are no part of its text layer) follow its text.

A long PDF is read in slices (``read_pdf_slice``), each a sandbox job of its own, so that
between them other users' jobs get the worker; its limits (pages, characters, its deadline)
are the whole document's, counted over all its slices."""

from __future__ import annotations

import ctypes
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pypdfium2 as pdfium

from omnichat.documents.extraction.errors import (
    DocumentTooLarge,
    EncryptedDocument,
    UnreadableDocument,
)
from omnichat.documents.extraction.text import clean_text
from omnichat.rag.types import DocumentKind, ExtractedDocument, ExtractedPage

if TYPE_CHECKING:
    from pathlib import Path

    from omnichat.documents.extraction.parse import Deadline

# PDFium load error codes (FPDF_ERR_*) that mean "needs a password" or "unsupported security".
# Annotations whose text a reader sees on the page or in its popup: sticky notes and text boxes.
TEXT_ANNOTATIONS = frozenset({pdfium.raw.FPDF_ANNOT_TEXT, pdfium.raw.FPDF_ANNOT_FREETEXT})
HIDDEN_ANNOTATION_FLAGS = pdfium.raw.FPDF_ANNOT_FLAG_HIDDEN | pdfium.raw.FPDF_ANNOT_FLAG_NOVIEW
MAX_ANNOTATION_BYTES = 1024 * 1024  # a note's text; the document's text budget still applies
_ENCRYPTION_ERRORS = frozenset({pdfium.raw.FPDF_ERR_PASSWORD, pdfium.raw.FPDF_ERR_SECURITY})
CORRUPT_DETAIL = "The PDF is corrupt or malformed and could not be read"
_SPACE_RUNS = re.compile(r"[ \t\u00a0]+")
_SPACE_AROUND_NEWLINES = re.compile(r" *\n *")
_EXCESS_NEWLINES = re.compile(r"\n{3,}")
# PDFium marks soft hyphens at line ends with U+0002 (dropped by clean_text) or U+FFFE.
_HYPHEN_MARKERS = re.compile("\ufffe")
# A slice ends after this long, whatever its page count: a few slow pages keep a worker from
# other users' jobs for seconds, not for the document's whole deadline.
SLICE_SECONDS = 2.0


@dataclass(frozen=True)
class PdfSlice:
    """Consecutive pages of a PDF of ``page_count`` pages, read in one job (``pages``: their
    text; ``ocr_pages`` and ``unread_pages``: as in ``ExtractedDocument``), and ``spent_s``,
    the seconds the document's reading has taken so far, this slice's included."""

    page_count: int
    pages: list[ExtractedPage]
    ocr_pages: tuple[int, ...]
    unread_pages: tuple[int, ...]
    spent_s: float

    @property
    def next_page(self) -> int:
        """The number of the page after the slice's last (``page_count + 1`` after the last)."""
        return self.pages[-1].number + 1

    @property
    def char_count(self) -> int:
        return sum(len(page.text) for page in self.pages)


def join_slices(slices: Sequence[PdfSlice]) -> ExtractedDocument:
    """The document the consecutive ``slices`` of one PDF make, first page to last."""
    return ExtractedDocument(
        kind=DocumentKind.PDF,
        pages=[page for part in slices for page in part.pages],
        ocr_pages=tuple(number for part in slices for number in part.ocr_pages),
        unread_pages=tuple(number for part in slices for number in part.unread_pages),
    )


def normalize_pdf_text(text: str) -> str:
    text = clean_text(_HYPHEN_MARKERS.sub("", text))
    text = _SPACE_RUNS.sub(" ", text)
    text = _SPACE_AROUND_NEWLINES.sub("\n", text)
    return _EXCESS_NEWLINES.sub("\n\n", text).strip()


def read_pdf(
    path: Path, max_pages: int, max_chars: int, deadline: Deadline, per_page_s: float
) -> ExtractedDocument:
    """Every page's text (possibly empty), in one job. ``deadline`` is extended by
    ``per_page_s`` for each page and checked after each; pages with no text but images are
    ``ocr_pages``, pages with neither ``unread_pages``."""
    return join_slices([read_pdf_slice(path, max_pages, max_chars, deadline, per_page_s)])


def read_pdf_slice(
    path: Path,
    max_pages: int,
    max_chars: int,
    deadline: Deadline,
    per_page_s: float,
    *,
    first: int = 1,
    pages_at_most: int | None = None,
    chars_before: int = 0,
) -> PdfSlice:
    """``read_pdf`` from page ``first`` on: every page, or at most ``pages_at_most`` pages
    and, once ``SLICE_SECONDS`` have passed, none more (at least one, if ``first`` is a page).
    The limits are the document's: its page count is checked by every slice, and
    ``chars_before`` (the text of the pages before ``first``) counts toward ``max_chars``."""
    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        # PDFium reports its last error, and some failures (an empty page tree) set none, so
        # a password error may be left over from an earlier file: confirm it from the bytes.
        if getattr(exc, "err_code", None) in _ENCRYPTION_ERRORS and _declares_encryption(path):
            raise EncryptedDocument from None
        raise UnreadableDocument(CORRUPT_DETAIL) from None
    try:
        page_count = len(document)
        if page_count == 0:
            raise UnreadableDocument("The PDF has no pages")
        if page_count > max_pages:
            raise DocumentTooLarge(
                f"The PDF has {page_count} pages; at most {max_pages} pages are accepted"
            )
        deadline.extend(per_page_s * page_count)
        pages: list[ExtractedPage] = []
        scanned: list[int] = []
        blank: list[int] = []
        total_chars = chars_before
        last = page_count if pages_at_most is None else min(page_count, first - 1 + pages_at_most)
        slice_ends = time.monotonic() + SLICE_SECONDS
        for index in range(first - 1, last):
            text, has_images = _page_text(document, index)
            text = normalize_pdf_text(text)
            total_chars += len(text)
            if total_chars > max_chars:
                raise DocumentTooLarge(
                    f"The PDF has more than {max_chars} characters of text, the limit"
                )
            if not text:
                (scanned if has_images else blank).append(index + 1)
            pages.append(ExtractedPage(number=index + 1, text=text))
            deadline.check()
            if pages_at_most is not None and time.monotonic() > slice_ends:
                break
        return PdfSlice(
            page_count=page_count,
            pages=pages,
            ocr_pages=tuple(scanned),
            unread_pages=tuple(blank),
            spent_s=deadline.elapsed,
        )
    except pdfium.PdfiumError:
        raise UnreadableDocument(CORRUPT_DETAIL) from None
    finally:
        document.close()


def _declares_encryption(path: Path) -> bool:
    """Whether the file has an /Encrypt entry (a trailer or xref-stream key, never compressed)."""
    marker = b"/Encrypt"
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            if marker in tail + block:
                return True
            tail = block[-len(marker) :]
    return False


def _page_text(document: pdfium.PdfDocument, index: int) -> tuple[str, bool]:
    """The page's text, and (only when it has none) whether it shows any image."""
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            text = str(textpage.get_text_range())
        finally:
            textpage.close()
        notes = _annotation_texts(page)
        if notes:
            text = "\n\n".join([text, *notes]) if text.strip() else "\n\n".join(notes)
        if text.strip():
            return text, False
        images = page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=4)
        return text, next(iter(images), None) is not None
    finally:
        page.close()


def _annotation_texts(page: pdfium.PdfPage) -> list[str]:
    """The text of the page's notes a reader sees (``TEXT_ANNOTATIONS``: sticky notes, text
    boxes), in the page's order, unless hidden; it is no part of the page's text layer."""
    raw = pdfium.raw
    texts: list[str] = []
    for index in range(raw.FPDFPage_GetAnnotCount(page.raw)):
        annotation = raw.FPDFPage_GetAnnot(page.raw, index)
        if not annotation:
            continue
        try:
            hidden = raw.FPDFAnnot_GetFlags(annotation) & HIDDEN_ANNOTATION_FLAGS
            if raw.FPDFAnnot_GetSubtype(annotation) in TEXT_ANNOTATIONS and not hidden:
                text = _annotation_string(annotation, b"Contents").strip()
                if text:
                    texts.append(text)
        finally:
            raw.FPDFPage_CloseAnnot(annotation)
    return texts


def _annotation_string(annotation: object, key: bytes) -> str:
    """An annotation's string entry (PDFium hands it over as UTF-16LE with a terminator)."""
    raw = pdfium.raw
    size = raw.FPDFAnnot_GetStringValue(annotation, key, None, 0)
    if size <= 2 or size > MAX_ANNOTATION_BYTES:
        return ""
    buffer = ctypes.create_string_buffer(size)
    raw.FPDFAnnot_GetStringValue(
        annotation, key, ctypes.cast(buffer, ctypes.POINTER(raw.FPDF_WCHAR)), size
    )
    return buffer.raw[: size - 2].decode("utf-16-le", errors="replace")
